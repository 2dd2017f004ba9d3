"""The lake: partitions ``<lake>/<zone>/<table>/ds=YYYY-MM-DD/``, changed only by commits.

A :class:`Commit` stages every partition it writes (or removes) in hidden folders beside the targets, then writes
one record under ``<lake>/_commits/``: the atomic creation of that file is the commit. Applying it renames the
staged folders into place, then writes the serving-store rows it lists, then deletes the record. Readers apply any
recorded but unapplied commit before they read (and read under a shared lock, so an apply in progress is never
seen half done). A crash before the record leaves the previous state plus hidden folders that :func:`recover`
sweeps; a crash after it is rolled forward by the next reader or run. So a day is published whole or not at all,
across all its tables and the serving store.

Curated zones hold Parquet; the raw zone holds drops as received (CSV), because parsing them is part of what the
validation gate checks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ml import contract
from ml.dates import as_date
from ml.errors import EcomError

__all__ = [
    "Commit",
    "MissingPartitionsError",
    "as_date",
    "commit",
    "day_ranges",
    "list_partitions",
    "partition_dir",
    "partition_rows",
    "pending_commits",
    "read_latest",
    "read_partition",
    "read_range",
    "read_text",
    "recover",
    "write_partition",
]

log = logging.getLogger(__name__)

ZONES = ("raw", "curated", "features", "outputs", "quarantine", "reports", "ground_truth")
PARQUET_FILE = "part-0.parquet"
COMMITS = "_commits"
LOCK_FILE = ".lock"
FOREIGN_LEFTOVER_AGE_S = 6 * 3600
"""A leftover of a process on another host is swept only when older than this (its liveness cannot be checked)."""
CRASH_EXIT = 137


def fault_point(name: str) -> None:
    """A named point between two steps of a commit, for crash-injection tests: ``ECOM_FAULT_TRACE=FILE`` appends
    ``name#n`` (its n-th passage in this process) to FILE; ``ECOM_CRASH_AT=name#n`` kills the process there, as
    ``kill -9`` would (no cleanup, no finally blocks)."""
    trace, crash_at = os.environ.get("ECOM_FAULT_TRACE"), os.environ.get("ECOM_CRASH_AT")
    if not trace and not crash_at:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    point = f"{name}#{_fault_counts[name]}"
    if trace:
        with open(trace, "a") as fh:
            fh.write(point + "\n")
    if crash_at == point:
        os._exit(CRASH_EXIT)


_fault_counts: dict[str, int] = {}


def partition_dir(lake: Path, zone: str, table: str, ds: str | dt.date) -> Path:
    if zone not in ZONES:
        raise EcomError(f"unknown lake zone {zone!r}; zones are {ZONES}")
    return Path(lake) / zone / table / f"ds={as_date(ds).isoformat()}"


# ---------------------------------------------------------------- locking


_held = threading.local()


def _held_locks() -> dict[str, tuple[int, bool]]:
    if not hasattr(_held, "locks"):
        _held.locks = {}
    return _held.locks


@contextlib.contextmanager
def _locked(lake: Path, exclusive: bool) -> Iterator[None]:
    """flock on ``<lake>/_commits/.lock``: shared for reads, exclusive for applying commits. Re-entrant within a
    thread (a read inside an apply reuses the exclusive lock)."""
    key = str(Path(lake).resolve())
    held = _held_locks()
    if key in held:
        if exclusive and not held[key][1]:
            raise RuntimeError("cannot upgrade a shared lake lock to an exclusive one")
        yield
        return
    folder = Path(lake) / COMMITS
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        held[key] = (fd, exclusive)
        try:
            yield
        finally:
            del held[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def _reading(lake: Path) -> Iterator[None]:
    """Apply recorded commits first, then hold the shared lock while reading (nested reads reuse it). A lake that
    does not exist yet has nothing to read: it is not created by a read."""
    if str(Path(lake).resolve()) in _held_locks() or not Path(lake).exists():
        yield
        return
    if pending_commits(lake, lake_only=True):
        with _locked(lake, exclusive=True):
            _apply_pending(Path(lake), serving_url=None)
    with _locked(lake, exclusive=False):
        yield


# ---------------------------------------------------------------- commits


def _owner() -> str:
    """``p<pid>h<host hash>``: whose staging folder this is, so a sweep can tell a live writer from a dead one."""
    return f"p{os.getpid()}h{zlib.crc32(socket.gethostname().encode()):08x}"


def _hidden(target: Path, role: str, tag: str) -> Path:
    return target.parent / f".{target.name}.{role}-{tag}"


@dataclass
class Commit:
    """Partitions staged for one atomic change of the lake (and the serving-store rows that mirror them)."""

    lake: Path
    serving_url: str | None = None
    label: str = ""
    id: str = field(default_factory=lambda: f"{time.time_ns():020d}-{_owner()}-{uuid.uuid4().hex[:6]}")
    puts: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    serves: list[dict] = field(default_factory=list)
    _frames: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)

    def folder(self, zone: str, table: str, ds: str | dt.date) -> Path:
        """A fresh hidden folder that becomes the partition when the commit applies; fill it with files."""
        target = partition_dir(self.lake, zone, table, ds)
        relative = target.relative_to(self.lake).as_posix()
        if relative in self.puts:
            raise EcomError(f"commit {self.label or self.id}: {relative} is written twice")
        staged = _hidden(target, "stage", self.id)
        staged.mkdir(parents=True)
        self.puts.append(relative)
        fault_point("stage")
        return staged

    def write(self, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame, files: dict[str, str] | None = None) -> None:
        """Stage one Parquet partition (with text ``files`` beside it, such as a summary)."""
        staged = self.folder(zone, table, ds)
        frame.reset_index(drop=True).to_parquet(staged / PARQUET_FILE, index=False)
        for name, text in (files or {}).items():
            (staged / name).write_text(text)
        for path in staged.iterdir():
            _fsync(path)

    def remove(self, zone: str, table: str, ds: str | dt.date) -> None:
        """Remove a partition when the commit applies (a quarantined drop leaves the raw zone this way)."""
        self.removes.append(partition_dir(self.lake, zone, table, ds).relative_to(self.lake).as_posix())

    def serve(self, table: str, ds: str | dt.date, zone: str = "outputs", frame: pd.DataFrame | None = None) -> None:
        """After the lake, replace ``table``'s ds rows in the serving store with the staged partition
        ``zone/table/ds`` (``frame``: the same rows, to save reading them back)."""
        if self.serving_url is None:
            raise EcomError(f"commit {self.label or self.id}: serving {table} needs a serving store URL")
        path = partition_dir(self.lake, zone, table, ds).relative_to(self.lake).as_posix()
        if path not in self.puts:
            raise EcomError(f"commit {self.label or self.id}: serve {table} from {path}, which this commit does not write")
        self.serves.append({"table": table, "ds": as_date(ds).isoformat(), "path": path})
        if frame is not None:
            self._frames[len(self.serves) - 1] = frame

    def record(self) -> dict:
        return {"id": self.id, "label": self.label, "puts": self.puts, "removes": self.removes, "serves": self.serves}

    def apply(self) -> None:
        """Write the record (the commit point), then apply it and every older recorded commit, in order."""
        folder = self.lake / COMMITS
        folder.mkdir(parents=True, exist_ok=True)
        fault_point("record")
        _write_record(folder / f"{self.id}.json", self.record())
        fault_point("apply")
        with _locked(self.lake, exclusive=True):
            _apply_pending(self.lake, self.serving_url, frames={self.id: self._frames})

    def abandon(self) -> None:
        """An error before the commit point: remove what was staged (a crash leaves it to :func:`recover`)."""
        for relative in self.puts:
            shutil.rmtree(_hidden(self.lake / relative, "stage", self.id), ignore_errors=True)


@contextlib.contextmanager
def commit(lake: Path, serving_url: str | None = None, label: str = "") -> Iterator[Commit]:
    """``with commit(lake) as day: day.write(...)``: everything staged in the block is applied at once when it
    ends without an error, and none of it otherwise."""
    change = Commit(Path(lake), serving_url, label)
    try:
        yield change
    except BaseException:
        change.abandon()
        raise
    change.apply()


def _write_record(path: Path, record: dict) -> None:
    tmp = _hidden(path, "tmp", _owner())
    tmp.write_text(json.dumps(record))
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def pending_commits(lake: Path, lake_only: bool = False) -> list[Path]:
    """Commit records not fully applied, oldest first (``lake_only``: those whose lake part is not applied)."""
    folder = Path(lake) / COMMITS
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    records = [n for n in names if n.endswith(".json") and not n.startswith(".")]
    if lake_only:
        records = [n for n in records if not n.endswith(SERVE_PENDING)]
    return [folder / n for n in sorted(records)]


SERVE_PENDING = ".serve.json"
"""A record whose lake part is applied and whose serving-store rows are still to write is renamed to this suffix."""


def _apply_pending(lake: Path, serving_url: str | None, frames: dict[str, dict[int, pd.DataFrame]] | None = None) -> None:
    """Apply every recorded commit in order (under the exclusive lock). Idempotent: a staged folder that is gone
    was applied already."""
    for path in pending_commits(lake):
        record = json.loads(path.read_text())
        if not path.name.endswith(SERVE_PENDING):
            _apply_lake(lake, record)
            if record["serves"]:
                served = path.with_name(f"{record['id']}{SERVE_PENDING}")
                os.replace(path, served)
                path = served
        if record["serves"]:
            if serving_url is None:
                continue
            _apply_serving(lake, record, serving_url, (frames or {}).get(record["id"], {}))
        fault_point("done")
        path.unlink()


def _apply_lake(lake: Path, record: dict) -> None:
    for relative in record["puts"]:
        target = lake / relative
        staged, old = _hidden(target, "stage", record["id"]), _hidden(target, "old", record["id"])
        if staged.exists():
            if target.exists():
                os.replace(target, old)
            os.replace(staged, target)
            fault_point("rename")
        shutil.rmtree(old, ignore_errors=True)
    for relative in record["removes"]:
        target = lake / relative
        old = _hidden(target, "old", record["id"])
        if target.exists():
            os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
        fault_point("rename")
    for relative in {Path(p).parent for p in record["puts"]}:
        _fsync_dir(lake / relative)


def _apply_serving(lake: Path, record: dict, serving_url: str, frames: dict[int, pd.DataFrame]) -> None:
    from ml import serving

    for i, entry in enumerate(record["serves"]):
        frame = frames.get(i)
        if frame is None:
            frame = pd.read_parquet(lake / entry["path"] / PARQUET_FILE)
        serving.replace_ds(serving_url, entry["table"], entry["ds"], frame)
        fault_point("serve")


def recover(lake: Path, serving_url: str | None) -> dict[str, int]:
    """Finish recorded commits (lake and serving store) and sweep the leftovers of crashed writers: staging and
    temporary folders whose process is gone. Every task calls this before it reads; returns what it did."""
    lake = Path(lake)
    applied = len(pending_commits(lake))
    if applied:
        with _locked(lake, exclusive=True):
            _apply_pending(lake, serving_url)
        applied -= len(pending_commits(lake))
    swept = sweep(lake)
    if applied or swept:
        log.warning("lake %s: finished %d interrupted commit(s), removed %d leftover(s) of crashed writers", lake, applied, swept)
    return {"commits_finished": applied, "leftovers_removed": swept}


def sweep(lake: Path) -> int:
    """Remove hidden staging/temporary entries whose writer is dead (same host: its pid is gone; another host:
    older than FOREIGN_LEFTOVER_AGE_S), except those a recorded commit still needs."""
    lake = Path(lake)
    if not lake.exists():
        return 0
    keep = {json.loads(p.read_text())["id"] for p in pending_commits(lake)}
    removed = 0
    for folder in _table_folders(lake):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            tag = _leftover_tag(entry.name)
            if tag is None or tag in keep or _writer_alive(tag, entry):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed += 1
    return removed


def _table_folders(lake: Path) -> Iterator[Path]:
    """Every folder that holds partitions (``zone/table``, ``zone/table/shard=N``) and the commit folder."""
    yield lake / COMMITS
    for zone in ZONES:
        stack = [lake / zone]
        while stack:
            folder = stack.pop()
            yield folder
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                stack.extend(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False) and not e.name.startswith(("ds=", ".")))


def _leftover_tag(name: str) -> str | None:
    """The tag of a hidden ``.<name>.<role>-<tag>`` entry (role stage, old or tmp), None for anything else."""
    if not name.startswith("."):
        return None
    for role in (".stage-", ".old-", ".tmp-"):
        if role in name:
            return name.rsplit(role, 1)[1]
    return None


def _writer_alive(tag: str, entry: os.DirEntry) -> bool:
    """Whether the process named in a leftover's tag may still be writing it."""
    owner = next((part for part in tag.split("-") if part.startswith("p") and "h" in part), None)
    if owner is None:
        return False
    pid_text, _, host = owner[1:].partition("h")
    if host != f"{zlib.crc32(socket.gethostname().encode()):08x}":
        return time.time() - entry.stat(follow_symlinks=False).st_mtime < FOREIGN_LEFTOVER_AGE_S
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_partition(lake: Path, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame) -> Path:
    """Replace one Parquet partition (a commit of its own); returns its folder."""
    with commit(lake, label=f"{zone}/{table}") as change:
        change.write(zone, table, ds, frame)
    return partition_dir(lake, zone, table, ds)


def read_partition(lake: Path, zone: str, table: str, ds: str | dt.date, columns: list[str] | None = None, filters: list[tuple] | None = None) -> pd.DataFrame:
    """One committed partition (``columns`` and pyarrow ``filters`` are passed to the Parquet reader)."""
    with _reading(lake):
        path = partition_dir(lake, zone, table, ds) / PARQUET_FILE
        if not path.exists():
            raise EcomError(f"no partition {zone}/{table} for ds={as_date(ds)} under {lake}; run the ingest for that day first")
        return pd.read_parquet(path, columns=columns, filters=filters)


def read_text(lake: Path, zone: str, table: str, ds: str | dt.date, name: str) -> str:
    """A file of a committed partition (a summary or a report stored beside the rows)."""
    with _reading(lake):
        path = partition_dir(lake, zone, table, ds) / name
        if not path.exists():
            raise EcomError(f"no {name} in {zone}/{table} for ds={as_date(ds)} under {lake}")
        return path.read_text()


def partition_rows(lake: Path, zone: str, table: str, ds: str | dt.date) -> int:
    """Row count of a Parquet partition, from its metadata (no data read)."""
    import pyarrow.parquet as pq

    with _reading(lake):
        return pq.ParquetFile(partition_dir(lake, zone, table, ds) / PARQUET_FILE).metadata.num_rows


def list_partitions(lake: Path, zone: str, table: str) -> list[dt.date]:
    """The dates of the committed partitions of a table, oldest first."""
    root = Path(lake) / zone / table
    with _reading(lake):
        if not root.exists():
            return []
        return sorted(as_date(p.name[3:]) for p in root.iterdir() if p.name.startswith("ds=") and p.is_dir())


def read_range(lake: Path, zone: str, table: str, start: str | dt.date, end: str | dt.date) -> pd.DataFrame:
    """Concatenate the partitions with start <= ds <= end (an empty contract frame when the table has none yet).

    Missing is not zero: every day from the table's first partition (or ``start``, if later) through ``end`` must
    be there, because a published day with no rows is a zero and a missing day is unknown. A gap raises
    :class:`MissingPartitionsError` naming the missing days."""
    lo, hi = as_date(start), as_date(end)
    with _reading(lake):
        available = list_partitions(lake, zone, table)
        days = [d for d in available if lo <= d <= hi]
        if available and available[0] <= hi:
            first = max(lo, available[0])
            expected = pd.date_range(first, hi, freq="D").date
            missing = sorted(set(expected) - set(days))
            if missing:
                raise MissingPartitionsError(zone, table, missing, lo, hi)
        frames = [read_partition(lake, zone, table, d) for d in days]
    if not frames:
        return contract.empty(table) if table in contract.TABLES else pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def day_ranges(days: list[dt.date]) -> str:
    """``2024-01-01..2024-01-03, 2024-01-07``: consecutive days folded into ranges, for messages."""
    spans: list[list[dt.date]] = []
    for d in sorted(days):
        if spans and (d - spans[-1][1]).days == 1:
            spans[-1][1] = d
        else:
            spans.append([d, d])
    return ", ".join(a.isoformat() if a == b else f"{a}..{b}" for a, b in spans)


class MissingPartitionsError(EcomError):
    """A date range has holes: the named days were never published, so they cannot be read as zeros."""

    def __init__(self, zone: str, table: str, missing: list[dt.date], start: dt.date, end: dt.date):
        self.table, self.missing = table, missing
        shown = day_ranges(missing)
        super().__init__(
            f"{zone}/{table}: {len(missing)} day(s) missing in {start}..{end}: {shown}. A missing day is not a day "
            f"without rows; land them (ecom_ingest with backfill_days, or Param fill_gap=true) before reading this range"
        )


def read_latest(lake: Path, zone: str, table: str, as_of: str | dt.date) -> pd.DataFrame:
    """The newest partition at or before ``as_of``: the snapshot of a dimension table."""
    with _reading(lake):
        days = [d for d in list_partitions(lake, zone, table) if d <= as_date(as_of)]
        if not days:
            raise EcomError(f"no partition of {zone}/{table} at or before {as_date(as_of)} under {lake}")
        return read_partition(lake, zone, table, days[-1])
