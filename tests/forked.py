"""``python -c CODE`` for the crash tests, forked from a server that has the heavy libraries imported already.

A crash test runs dozens of short processes (one per fault point, each killed with ``os._exit``). As fresh
interpreters, each imported pandas, pyarrow and delta-rs again, which was most of its time. multiprocessing's
forkserver imports them once, in a process that has run nothing else, and forks each run from it. The server
imports nothing of ``ml``: its modules keep per-process state (fault-point counts, open Delta tables, database
engines), which each run must start without, as a fresh interpreter does."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRELOADED = ["numpy", "pandas", "pyarrow.parquet", "pyarrow.fs", "deltalake", "sqlalchemy"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOADED)


def run_python(code: str, args: list[str] | None = None, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """What ``subprocess.run([python, "-c", code, *args], capture_output=True, text=True)`` returns (stdout is not
    captured), run in this process's environment with ``env`` added."""
    argv = ["python", "-c", code, *(args or [])]
    with tempfile.NamedTemporaryFile("r", suffix=".stderr") as stderr:
        process = _context.Process(target=_run, args=(code, argv[3:], {**os.environ, **env}, stderr.name))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(argv, timeout)
        return subprocess.CompletedProcess(argv, process.exitcode, "", Path(stderr.name).read_text())


def _run(code: str, args: list[str], env: dict[str, str], stderr_path: str) -> None:
    """In the forked process: the environment, argv and stderr of ``python -c``, then the code as ``__main__``."""
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["-c", *args]
    err = os.open(stderr_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(err, 2)
    os.close(err)
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
