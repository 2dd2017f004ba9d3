"""The lake: tables ``<lake>/<zone>/<table>/`` partitioned by ``ds=YYYY-MM-DD``, changed only by commits.

Tables of rows are Delta Lake tables (delta-rs): readers get partition pruning and column selection, every version
stays readable by time travel, and other engines can read them. Files as received (raw drops, quarantine) and
files that are not rows (route maps, validation reports, a table's text files such as an HTML report) are plain
folder partitions.

A day touches several tables, and Delta commits one table at a time, so a :class:`Commit` is recorded across them:
it stages every data file and folder it writes in hidden entries beside the targets, then writes one record under
``<lake>/_commits/``: the atomic creation of that file is the commit. Applying it renames the staged entries into
place, makes one Delta transaction per table (a predicate overwrite of the record's days; a roll-forward makes them
all again, which leaves the same day), then writes the serving-store rows it lists, then deletes the record.
Readers apply any recorded but unapplied commit before they read (and read under a shared lock, so an apply in
progress is never seen half done). A crash before the record leaves the previous state plus hidden entries that
:func:`recover` sweeps; a crash after it is rolled forward by the next reader or run. So a day is published whole
or not at all, across all its tables and the serving store.
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
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

from ml import contract
from ml.dates import as_date
from ml.errors import EcomError

__all__ = [
    "Commit",
    "MissingPartitionsError",
    "as_date",
    "commit",
    "day_ranges",
    "forget_open_tables",
    "list_partitions",
    "partition_dir",
    "partition_rows",
    "pending_commits",
    "read_latest",
    "read_partition",
    "read_range",
    "read_text",
    "recording_reads",
    "reading",
    "recover",
    "text_path",
    "vacuum",
    "write_partition",
]

log = logging.getLogger(__name__)

ZONES = ("raw", "curated", "features", "outputs", "quarantine", "reports", "ground_truth")
FILE_ZONES = ("raw", "quarantine")
"""Zones that keep files as received: no Delta tables there."""
DELTA_LOG = "_delta_log"
TEXT_FILES = "_files"
"""``<table>/_files/ds=.../``: a Delta table's text files for a day (a summary, a report), a folder partition."""
DELTA_CONFIG = {
    "delta.checkpointInterval": "10",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}
"""Checkpoints every 10 versions keep opening a table with years of daily versions cheap; a replaced day's files
stay readable by time travel for a week."""
VACUUM_EVERY = 50
"""Every this many versions of a table, the files its days dropped more than the retention ago are deleted: reruns
and the daily clean-up of staged shards would otherwise keep every old file on disk."""
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
def reading(lake: Path) -> Iterator[None]:
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
    rows: list[dict] = field(default_factory=list)
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
        """Stage the rows of one day of a Delta table (with text ``files`` for that day, such as a summary)."""
        if zone in FILE_ZONES:
            raise EcomError(f"commit {self.label or self.id}: the {zone} zone keeps files as received; stage them with folder()")
        target = partition_dir(self.lake, zone, table, ds) / f"part-{self.id}.parquet"
        relative = target.relative_to(self.lake).as_posix()
        if any(entry["file"] == relative for entry in self.rows):
            raise EcomError(f"commit {self.label or self.id}: {zone}/{table} ds={as_date(ds)} is written twice")
        staged = _hidden(target.parent, "stage", self.id)
        staged.parent.mkdir(parents=True, exist_ok=True)
        frame.reset_index(drop=True).to_parquet(staged, index=False)
        _fsync(staged)
        self.rows.append({"table": f"{zone}/{table}", "ds": as_date(ds).isoformat(), "file": relative, "rows": len(frame)})
        fault_point("stage")
        if files:
            folder = self.folder(zone, f"{table}/{TEXT_FILES}", ds)
            for name, text in files.items():
                (folder / name).write_text(text)
                _fsync(folder / name)

    def remove(self, zone: str, table: str, ds: str | dt.date) -> None:
        """Remove a day when the commit applies (a quarantined drop leaves the raw zone this way)."""
        root = Path(self.lake) / zone / table
        if (root / DELTA_LOG).exists():
            self.rows.append({"table": f"{zone}/{table}", "ds": as_date(ds).isoformat(), "file": None, "rows": 0})
            if (root / TEXT_FILES).exists():
                self.removes.append(partition_dir(self.lake, zone, f"{table}/{TEXT_FILES}", ds).relative_to(self.lake).as_posix())
        else:
            self.removes.append(partition_dir(self.lake, zone, table, ds).relative_to(self.lake).as_posix())

    def serve(self, table: str, ds: str | dt.date, zone: str = "outputs", frame: pd.DataFrame | None = None) -> None:
        """After the lake, replace ``table``'s ds rows in the serving store with the rows this commit writes to
        ``zone/table`` for ds (``frame``: the same rows, to save reading them back)."""
        if self.serving_url is None:
            raise EcomError(f"commit {self.label or self.id}: serving {table} needs a serving store URL")
        day = as_date(ds).isoformat()
        written = [entry["file"] for entry in self.rows if entry["table"] == f"{zone}/{table}" and entry["ds"] == day and entry["file"]]
        if not written:
            raise EcomError(f"commit {self.label or self.id}: serve {table} from {zone}/{table} ds={day}, which this commit does not write")
        self.serves.append({"table": table, "ds": day, "path": written[0]})
        if frame is not None:
            self._frames[len(self.serves) - 1] = frame

    def record(self) -> dict:
        return {"id": self.id, "label": self.label, "puts": self.puts, "removes": self.removes, "rows": self.rows, "serves": self.serves}

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
        for entry in self.rows:
            if entry["file"]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_hidden((self.lake / entry["file"]).parent, "stage", self.id))


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
    _apply_delta(lake, record)


def _apply_delta(lake: Path, record: dict) -> None:
    """One Delta transaction per table: overwrite the record's days of that table with its staged files (none for a
    removed day), the record's id in the commit's metadata.

    A record found again after a crash part-way through is applied again in full, tables it already reached
    included: records apply one at a time under the exclusive lock, so whatever was applied in between is
    overwritten by this record's days again and the day ends whole, as this record wrote it."""
    from deltalake.transaction import AddAction, CommitProperties, RemoveAction

    by_table: dict[str, list[dict]] = {}
    for entry in record.get("rows", []):
        by_table.setdefault(entry["table"], []).append(entry)
    for name, entries in by_table.items():
        root = lake / name
        adds: list[AddAction | RemoveAction] = []
        target = None
        for entry in entries:
            if entry["file"] is None:
                continue
            target = lake / entry["file"]
            staged = _hidden(target.parent, "stage", record["id"])
            if staged.exists():
                target.parent.mkdir(exist_ok=True)
                os.replace(staged, target)
                fault_point("rename")
            stat = target.stat()
            adds.append(
                AddAction(
                    target.relative_to(root).as_posix(),
                    stat.st_size,
                    {"ds": entry["ds"]},
                    int(stat.st_mtime * 1000),
                    True,
                    json.dumps({"numRecords": entry["rows"]}),
                )
            )
        schema = None if target is None else _delta_schema(target)  # the table takes its newest day's schema
        opened = _delta_table(root, create_with=schema)
        if opened is None:  # only removals, of a table that never existed
            continue
        table = opened.table
        days = sorted({entry["ds"] for entry in entries})
        table.create_write_transaction(
            adds,
            "overwrite",
            schema if schema is not None else table.schema(),
            partition_by=["ds"],
            partition_filters=[("ds", "in", days)],
            commit_properties=CommitProperties(custom_metadata={"ecom.commit": record["id"], "ecom.label": record.get("label", "")}),
        )
        fault_point("delta")
        if (table.version() + 1) % VACUUM_EVERY == 0 and opened.catch_up():  # the open table is a version behind its commit
            _vacuum(opened)


def _delta_schema(path: Path) -> pa.Schema:
    """The Delta schema of a data file: its own columns, with ``ds`` the partition column as text (a frame may carry
    its own ``ds`` column, which the file keeps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path).remove_metadata()
    if "ds" in schema.names:
        return schema.set(schema.get_field_index("ds"), pa.field("ds", pa.string()))
    return schema.append(pa.field("ds", pa.string()))


@dataclass
class _OpenTable:
    """A Delta table open in this process, with its days indexed (day -> data files and rows) at its version."""

    root: Path
    table: DeltaTable
    stamp: tuple[int, int] | None = None
    index: tuple[int, dict[str, list[tuple[str, int]]]] | None = None

    def __post_init__(self) -> None:
        self.stamp = _log_stamp(self.root, self.table.version())

    def catch_up(self) -> bool:
        """Bring the table to the log's newest version; False when the log is not the one this table was read
        from (the folder was put back from a copy), and the table must be opened anew."""
        version = self.table.version()
        if self.stamp != _log_stamp(self.root, version):
            return False
        if (self.root / DELTA_LOG / f"{version + 1:020d}.json").exists():
            try:
                self.table.update_incremental()
            except Exception as exc:  # noqa: BLE001 - any failure to catch up is answered by reopening the table
                log.info("reopening Delta table %s: %s", self.root, exc)
                return False
        self.stamp = _log_stamp(self.root, self.table.version())
        return True

    def days(self) -> dict[str, list[tuple[str, int]]]:
        """Each day's data files (paths) and row counts at the table's version."""
        import pyarrow as pa

        version = self.table.version()
        if self.index is None or self.index[0] != version:
            actions = pa.table(self.table.get_add_actions(flatten=True))
            days: dict[str, list[tuple[str, int]]] = {}
            for path, day, rows in zip(actions["path"].to_pylist(), actions["partition.ds"].to_pylist(), actions["num_records"].to_pylist(), strict=True):
                days.setdefault(day, []).append((str(self.root / unquote(path)), int(rows or 0)))
            self.index = (version, days)
        return self.index[1]


_tables: dict[str, _OpenTable] = {}
"""Open Delta tables of this process, by path: reopening one replays its log, bringing one up to date reads only
the versions since."""


def _delta_table(root: Path, create_with: pa.Schema | None = None) -> _OpenTable | None:
    """The Delta table at ``root``, up to date (created with schema ``create_with`` if given and missing; None if it
    does not exist)."""
    from deltalake import DeltaTable

    if not (root / DELTA_LOG).exists():
        if create_with is None:
            return None
        DeltaTable.create(str(root), create_with, partition_by=["ds"], configuration=DELTA_CONFIG)
    key = str(root.absolute())
    cached = _tables.get(key)
    if cached is not None and cached.catch_up():
        return cached
    opened = _tables[key] = _OpenTable(root, DeltaTable(str(root)))
    return opened


def vacuum(lake: Path, zone: str, table: str, retention_hours: int | None = None) -> list[str]:
    """Delete the files of a Delta table that no version newer than the retention references (the table's
    ``delta.deletedFileRetentionDuration`` unless ``retention_hours`` is given); returns their paths."""
    with _locked(Path(lake), exclusive=True):
        opened = _delta_table(Path(lake) / zone / table)
        return [] if opened is None else _vacuum(opened, retention_hours)


def _vacuum(opened: _OpenTable, retention_hours: int | None = None) -> list[str]:
    removed = opened.table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=retention_hours is None)
    if removed:
        log.info("vacuumed %d replaced file(s) of %s", len(removed), opened.root)
    return removed


def forget_open_tables() -> None:
    """Drop this process's open Delta tables: the next read opens each anew, as a fresh task does."""
    _tables.clear()
    _versions.clear()


def _log_stamp(root: Path, version: int) -> tuple[int, int] | None:
    """Which file holds a version's log entry (inode, creation time): a table put back from a copy has other files
    for the same versions, and then an open handle's state is not the table's."""
    try:
        stat = (root / DELTA_LOG / f"{version:020d}.json").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_ctime_ns


_versions: dict[tuple[str, int], _OpenTable] = {}
"""Tables opened at an older version (time travel), by path and version."""

_reads: ContextVar[dict[str, set[int]] | None] = ContextVar("lake_reads", default=None)


@contextlib.contextmanager
def recording_reads() -> Iterator[dict[str, set[int]]]:
    """Collect the version of every Delta table read inside the block (``{"curated/events": {41}}``), so that what
    a model was trained on can be read again exactly (``version=`` of the readers)."""
    seen: dict[str, set[int]] = {}
    token = _reads.set(seen)
    try:
        yield seen
    finally:
        _reads.reset(token)


def _open(lake: Path, zone: str, table: str, version: int | None) -> _OpenTable | None:
    """The table as readers see it: up to date, or at ``version``; None if it is not a Delta table."""
    from deltalake import DeltaTable

    root = Path(lake) / zone / table
    if version is None:
        opened = _delta_table(root)
    elif not (root / DELTA_LOG).exists():
        opened = None
    else:
        key = (str(root.absolute()), version)
        opened = _versions.get(key)
        if opened is None or opened.stamp != _log_stamp(root, version):
            opened = _versions[key] = _OpenTable(root, DeltaTable(str(root), version=version))
    seen = _reads.get()
    if opened is not None and seen is not None:
        seen.setdefault(f"{zone}/{table}", set()).add(opened.table.version())
    return opened


def _day_files(lake: Path, zone: str, table: str, ds: str | dt.date, version: int | None = None) -> list[tuple[str, int]] | None:
    """The data files and row counts of one day of a Delta table ([] if that day is not in it; None if the table is
    not Delta)."""
    opened = _open(lake, zone, table, version)
    if opened is None:
        return None
    return opened.days().get(as_date(ds).isoformat(), [])


def _apply_serving(lake: Path, record: dict, serving_url: str, frames: dict[int, pd.DataFrame]) -> None:
    from ml import serving

    for i, entry in enumerate(record["serves"]):
        frame = frames.get(i)
        if frame is None:
            frame = pd.read_parquet(lake / entry["path"])
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
                stack.extend(
                    Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False) and not e.name.startswith(("ds=", ".")) and e.name != DELTA_LOG
                )


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


def write_partition(lake: Path, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame) -> None:
    """Replace one day of a table (a commit of its own)."""
    with commit(lake, label=f"{zone}/{table}") as change:
        change.write(zone, table, ds, frame)


def _missing_day(lake: Path, zone: str, table: str, ds: str | dt.date) -> EcomError:
    return EcomError(f"no partition {zone}/{table} for ds={as_date(ds)} under {lake}; run the ingest for that day first")


def read_partition(
    lake: Path,
    zone: str,
    table: str,
    ds: str | dt.date,
    columns: list[str] | None = None,
    filters: list[tuple] | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """One committed day of a table (``columns`` and pyarrow ``filters`` are passed to the Parquet reader), as of
    the table's ``version`` if given."""
    partition_dir(lake, zone, table, ds)
    with reading(lake):
        files = _day_files(lake, zone, table, ds, version)
        if files is None and (partition_dir(lake, zone, table, ds) / "part-0.parquet").exists():
            raise EcomError(f"{zone}/{table} under {lake} is a Parquet folder table from before the lake moved to Delta tables; rebuild the lake (make demo)")
        if not files:
            raise _missing_day(lake, zone, table, ds)
        frames = [pd.read_parquet(path, columns=columns, filters=filters) for path, _ in files]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def text_path(lake: Path, zone: str, table: str, ds: str | dt.date, name: str) -> Path:
    """Where a text file of a day lives: beside a Delta table's rows in its ``_files`` folder, or in a folder
    partition."""
    if (Path(lake) / zone / table / DELTA_LOG).exists():
        return partition_dir(lake, zone, f"{table}/{TEXT_FILES}", ds) / name
    return partition_dir(lake, zone, table, ds) / name


def read_text(lake: Path, zone: str, table: str, ds: str | dt.date, name: str) -> str:
    """A text file of a committed day (a summary or a report stored beside the rows)."""
    with reading(lake):
        path = text_path(lake, zone, table, ds, name)
        if not path.exists():
            raise EcomError(f"no {name} in {zone}/{table} for ds={as_date(ds)} under {lake}")
        return path.read_text()


def partition_rows(lake: Path, zone: str, table: str, ds: str | dt.date) -> int:
    """Row count of one day of a Delta table, from its log (no data read)."""
    with reading(lake):
        files = _day_files(lake, zone, table, ds)
        if not files:
            raise _missing_day(lake, zone, table, ds)
        return sum(rows for _, rows in files)


def list_partitions(lake: Path, zone: str, table: str, version: int | None = None) -> list[dt.date]:
    """The committed days of a table (Delta or folder partitions), oldest first (as of a Delta table's
    ``version`` if given)."""
    root = Path(lake) / zone / table
    with reading(lake):
        opened = _open(lake, zone, table, version)
        if opened is not None:
            return sorted(as_date(day) for day in opened.days())
        if not root.exists():
            return []
        return sorted(as_date(p.name[3:]) for p in root.iterdir() if p.name.startswith("ds=") and p.is_dir())


def read_range(lake: Path, zone: str, table: str, start: str | dt.date, end: str | dt.date, version: int | None = None) -> pd.DataFrame:
    """Concatenate the partitions with start <= ds <= end (an empty contract frame when the table has none yet), as
    of the table's ``version`` if given.

    Missing is not zero: every day from the table's first partition (or ``start``, if later) through ``end`` must
    be there, because a published day with no rows is a zero and a missing day is unknown. A gap raises
    :class:`MissingPartitionsError` naming the missing days."""
    lo, hi = as_date(start), as_date(end)
    with reading(lake):
        available = list_partitions(lake, zone, table, version)
        days = [d for d in available if lo <= d <= hi]
        if available and available[0] <= hi:
            first = max(lo, available[0])
            expected = pd.date_range(first, hi, freq="D").date
            missing = sorted(set(expected) - set(days))
            if missing:
                raise MissingPartitionsError(zone, table, missing, lo, hi)
        frames = [read_partition(lake, zone, table, d, version=version) for d in days]
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
    with reading(lake):
        days = [d for d in list_partitions(lake, zone, table) if d <= as_date(as_of)]
        if not days:
            raise EcomError(f"no partition of {zone}/{table} at or before {as_date(as_of)} under {lake}")
        return read_partition(lake, zone, table, days[-1])
