"""How work is split: into shards for mapped tasks (a stable hash of the ids), and over the worker processes a
step may start where it runs.

A Celery prefork worker runs each task in a daemonic process, and a daemonic process may not have children
(``AssertionError: daemonic processes are not allowed to have children``), so there the work stays in one process.
``dag.test()`` and the CLI never show this; the live stack does."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def process_workers(wanted: int, what: str) -> int:
    """``wanted``, or 1 inside a daemonic process (logged, naming ``what``)."""
    if wanted > 1 and multiprocessing.current_process().daemon:
        log.info("running inside a daemonic worker process (e.g. a Celery prefork child): %s in one process", what)
        return 1
    return wanted


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, each limited to one BLAS/OpenMP thread.

    The processes already fill the cores. Left at their default, each worker's OpenBLAS starts a thread per core,
    and its idle threads spin, taking the cores from the other workers."""
    return ProcessPoolExecutor(workers, initializer=_one_thread)


def _one_thread() -> None:
    """Limit the thread pools loaded already (threadpoolctl) and those a worker loads later, e.g. scipy's OpenBLAS
    on statsmodels' first import, which read the environment when they load."""
    import os

    from threadpoolctl import threadpool_limits

    os.environ.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))
    threadpool_limits(1)


def shard_of(ids: np.ndarray | pd.Series, shards: int) -> np.ndarray:
    """Stable shard number per id (the same in every process and on every day)."""
    hashed = pd.util.hash_pandas_object(pd.Series(np.asarray(ids, dtype=str), dtype=object), index=False)
    return (hashed.to_numpy() % np.uint64(shards)).astype(np.int64)
