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
import itertools
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
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
from ml.lake_storage import COMMITS, Entry, LocalStorage, Storage, io_map, storage

__all__ = [
    "Commit",
    "MissingPartitionsError",
    "as_date",
    "commit",
    "day_ranges",
    "forget_open_tables",
    "list_partitions",
    "local_folder",
    "partition_dir",
    "partition_key",
    "partition_location",
    "partition_rows",
    "pending_commits",
    "read_latest",
    "read_file",
    "read_partition",
    "read_partition_file",
    "read_range",
    "read_text",
    "recording_reads",
    "reading",
    "recover",
    "subtables",
    "text_path",
    "vacuum",
    "write_file",
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


Lake = str | os.PathLike[str]
"""A lake: a local folder, or ``s3://bucket/prefix`` (see :mod:`ml.lake_storage`)."""


def partition_key(zone: str, table: str, ds: str | dt.date) -> str:
    """``zone/table/ds=YYYY-MM-DD``: where a day lives, relative to the lake's root."""
    if zone not in ZONES:
        raise EcomError(f"unknown lake zone {zone!r}; zones are {ZONES}")
    return f"{zone}/{table}/ds={as_date(ds).isoformat()}"


def partition_dir(lake: Lake, zone: str, table: str, ds: str | dt.date) -> Path:
    """The folder of a day in a local lake (an object-store lake has none: read it with :func:`local_folder`)."""
    key = partition_key(zone, table, ds)
    store = storage(lake)
    if not isinstance(store, LocalStorage):
        raise EcomError(f"{key} is in the object store {store}, not in a folder of this machine; read it with lake.local_folder")
    return store.root / key


def partition_location(lake: Lake, zone: str, table: str, ds: str | dt.date) -> str:
    """Where a day lives, for messages and links: a local path, or an ``s3://`` URI."""
    return _location(storage(lake), partition_key(zone, table, ds))


def _location(store: Storage, key: str) -> str:
    return str(store.root / key) if isinstance(store, LocalStorage) else store.delta_uri(key)


@contextlib.contextmanager
def local_folder(lake: Lake, zone: str, table: str, ds: str | dt.date) -> Iterator[Path]:
    """A committed folder partition (a raw drop, a report) where local tools can read it: the folder itself in a
    local lake, a temporary copy of it from an object store (copied under the read lock, which is not held while
    the caller reads, so the caller may commit inside the block). A day that is not there is an empty folder."""
    with contextlib.ExitStack() as stack:
        with reading(lake):
            folder = stack.enter_context(storage(lake).local_folder(partition_key(zone, table, ds)))
        yield folder


def subtables(lake: Lake, zone: str, table: str) -> list[str]:
    """The tables nested in ``zone/table`` (``<table>_shards/shard=0``...), by name relative to the zone."""
    return sorted(f"{table}/{e.name}" for e in storage(lake).entries(f"{zone}/{table}") if e.is_dir and not e.name.startswith(("ds=", ".", "_")))


# ---------------------------------------------------------------- locking


_held = threading.local()
_acquisitions = itertools.count(1)


def _held_locks() -> dict[str, tuple[bool, int]]:
    """The lakes whose lock this thread holds: whether exclusively, and which acquisition it is."""
    if not hasattr(_held, "locks"):
        _held.locks = {}
    return _held.locks


def _shared_hold(store: Storage) -> int | None:
    """The acquisition of the shared lock this thread holds on the lake, None if it holds none or the exclusive one.
    Nothing commits while a shared lock is held, so a table checked against its log once in that hold is current
    for the rest of it."""
    held = _held_locks().get(store.key)
    return held[1] if held is not None and not held[0] else None


@contextlib.contextmanager
def _locked(lake: Lake, exclusive: bool) -> Iterator[None]:
    """The lake's lock (a flock, or an advisory lock for an object store): shared for reads, exclusive for applying
    commits. Re-entrant within a thread (a read inside an apply reuses the exclusive lock)."""
    store = storage(lake)
    held = _held_locks()
    if store.key in held:
        if exclusive and not held[store.key][0]:
            raise RuntimeError("cannot upgrade a shared lake lock to an exclusive one")
        yield
        return
    with store.lock(exclusive):
        held[store.key] = (exclusive, next(_acquisitions))
        try:
            yield
        finally:
            del held[store.key]


@contextlib.contextmanager
def reading(lake: Lake) -> Iterator[None]:
    """Apply recorded commits first, then hold the shared lock while reading (nested reads reuse it). A lake that
    does not exist yet has nothing to read: it is not created by a read."""
    store = storage(lake)
    if store.key in _held_locks() or store.missing():
        yield
        return
    if _pending(store, lake_only=True):
        with _locked(lake, exclusive=True):
            _apply_pending(store, serving_url=None)
    with _locked(lake, exclusive=False):
        yield


# ---------------------------------------------------------------- commits


def _owner() -> str:
    """``p<pid>h<host hash>``: whose staging folder this is, so a sweep can tell a live writer from a dead one."""
    return f"p{os.getpid()}h{zlib.crc32(socket.gethostname().encode()):08x}"


def _hidden(target: str, role: str, tag: str) -> str:
    parent, _, name = target.rpartition("/")
    return f"{parent}/.{name}.{role}-{tag}" if parent else f".{name}.{role}-{tag}"


def _parent(key: str) -> str:
    return key.rpartition("/")[0]


@dataclass
class Commit:
    """Partitions staged for one atomic change of the lake (and the serving-store rows that mirror them)."""

    lake: Lake
    serving_url: str | None = None
    label: str = ""
    id: str = field(default_factory=lambda: f"{time.time_ns():020d}-{_owner()}-{uuid.uuid4().hex[:6]}")
    puts: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    serves: list[dict] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    _frames: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)
    _folders: dict[str, Path] = field(default_factory=dict, repr=False)
    _tables_made: set[str] = field(default_factory=set, repr=False)

    @property
    def store(self) -> Storage:
        return storage(self.lake)

    def folder(self, zone: str, table: str, ds: str | dt.date) -> Path:
        """A fresh local folder that becomes the partition when the commit applies; fill it with files."""
        target = partition_key(zone, table, ds)
        if target in self.puts:
            raise EcomError(f"commit {self.label or self.id}: {target} is written twice")
        self._folders[target] = self.store.new_folder(_hidden(target, "stage", self.id))
        self.puts.append(target)
        fault_point("stage")
        return self._folders[target]

    def write(self, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame, files: dict[str, str] | None = None) -> None:
        """Stage the rows of one day of a Delta table (with text ``files`` for that day, such as a summary)."""
        self.write_days(zone, table, {ds: frame})
        if files:
            folder = self.folder(zone, f"{table}/{TEXT_FILES}", ds)
            for name, text in files.items():
                (folder / name).write_text(text)

    def write_days(self, zone: str, table: str, frames: Mapping[str | dt.date, pd.DataFrame]) -> None:
        """Stage the rows of several days of a Delta table. The files are written concurrently: on an object store
        each is a round trip, and a history drop has one per day."""
        if zone in FILE_ZONES:
            raise EcomError(f"commit {self.label or self.id}: the {zone} zone keeps files as received; stage them with folder()")
        staged = {entry["file"] for entry in self.rows}
        days = [(as_date(ds), partition_key(zone, table, ds), frame) for ds, frame in frames.items()]
        targets = [f"{day}/part-{self.id}.parquet" for _, day, _ in days]
        for (ds, _, _), target in zip(days, targets, strict=True):
            if target in staged:
                raise EcomError(f"commit {self.label or self.id}: {zone}/{table} ds={ds} is written twice")
        if days and not self.store.stages_data_files and f"{zone}/{table}" not in self._tables_made:
            _make_table(self.store, f"{zone}/{table}", days[0][2])
            self._tables_made.add(f"{zone}/{table}")

        def write_one(day: str, target: str, frame: pd.DataFrame) -> tuple[int, int]:
            size = self.store.write_parquet(_hidden(day, "stage", self.id) if self.store.stages_data_files else target, frame)
            return size, int(time.time() * 1000)

        written = io_map(write_one, [day for _, day, _ in days], targets, [frame for _, _, frame in days])
        for (ds, _, frame), target, (size, written_ms) in zip(days, targets, written, strict=True):
            self.rows.append({"table": f"{zone}/{table}", "ds": ds.isoformat(), "file": target, "rows": len(frame), "bytes": size, "written_ms": written_ms})
            fault_point("stage")

    def remove(self, zone: str, table: str, ds: str | dt.date) -> None:
        """Remove a day when the commit applies (a quarantined drop leaves the raw zone this way)."""
        root = f"{zone}/{table}"
        if self.store.exists(f"{root}/{DELTA_LOG}"):
            self.rows.append({"table": root, "ds": as_date(ds).isoformat(), "file": None, "rows": 0})
            if self.store.exists(f"{root}/{TEXT_FILES}"):
                self.removes.append(partition_key(zone, f"{table}/{TEXT_FILES}", ds))
        else:
            self.removes.append(partition_key(zone, table, ds))

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
        return {
            "id": self.id,
            "label": self.label,
            "puts": self.puts,
            "files": self.files,
            "removes": self.removes,
            "rows": self.rows,
            "serves": self.serves,
        }

    def apply(self) -> None:
        """Seal the staged folders (durable, or uploaded), write the record (the commit point), then apply it and
        every older recorded commit, in order."""
        store = self.store
        for target, local in self._folders.items():
            self.files[target] = store.seal_folder(_hidden(target, "stage", self.id), local)
        fault_point("record")
        _write_record(store, f"{COMMITS}/{self.id}.json", self.record())
        fault_point("apply")
        with _locked(self.lake, exclusive=True):
            _apply_pending(store, self.serving_url, frames={self.id: self._frames})

    def abandon(self) -> None:
        """An error before the commit point: remove what was staged (a crash leaves it to :func:`recover`)."""
        store = self.store
        for target, local in self._folders.items():
            store.delete(_hidden(target, "stage", self.id))
            shutil.rmtree(local, ignore_errors=True)
        for entry in self.rows:
            if entry["file"]:
                store.delete(_hidden(_parent(entry["file"]), "stage", self.id) if store.stages_data_files else entry["file"])


@contextlib.contextmanager
def commit(lake: Lake, serving_url: str | None = None, label: str = "") -> Iterator[Commit]:
    """``with commit(lake) as day: day.write(...)``: everything staged in the block is applied at once when it
    ends without an error, and none of it otherwise."""
    change = Commit(lake, serving_url, label)
    try:
        yield change
    except BaseException:
        change.abandon()
        raise
    change.apply()


def _write_record(store: Storage, key: str, record: dict) -> None:
    store.put_text(key, json.dumps(record), _hidden(key, "tmp", _owner()))


def pending_commits(lake: Lake, lake_only: bool = False) -> list[str]:
    """Commit records not fully applied (keys under the lake), oldest first (``lake_only``: those whose lake part
    is not applied)."""
    return _pending(storage(lake), lake_only)


def _pending(store: Storage, lake_only: bool = False) -> list[str]:
    records = [e.name for e in store.entries(COMMITS) if not e.is_dir and e.name.endswith(".json") and not e.name.startswith(".")]
    if lake_only:
        records = [n for n in records if not n.endswith(SERVE_PENDING)]
    return [f"{COMMITS}/{n}" for n in sorted(records)]


SERVE_PENDING = ".serve.json"
"""A record whose lake part is applied and whose serving-store rows are still to write is renamed to this suffix."""


def _apply_pending(store: Storage, serving_url: str | None, frames: dict[str, dict[int, pd.DataFrame]] | None = None) -> None:
    """Apply every recorded commit in order (under the exclusive lock). Idempotent: a staged folder that is gone
    was applied already."""
    for key in _pending(store):
        if not store.exists(key):  # an object store's rename is a copy then a delete: the copy was applied already
            continue
        record = json.loads(store.read_text(key))
        if not key.endswith(SERVE_PENDING):
            _apply_lake(store, record)
            if record["serves"]:
                served = f"{COMMITS}/{record['id']}{SERVE_PENDING}"
                store.move(key, served)
                key = served
        if record["serves"]:
            if serving_url is None:
                continue
            _apply_serving(store, record, serving_url, (frames or {}).get(record["id"], {}))
        fault_point("done")
        store.delete(key)


def _apply_lake(store: Storage, record: dict) -> None:
    files = record.get("files", {})
    for target in record["puts"]:
        if store.put_folder(_hidden(target, "stage", record["id"]), target, _hidden(target, "old", record["id"]), files.get(target)):
            fault_point("rename")
    for target in record["removes"]:
        store.drop_folder(target, _hidden(target, "old", record["id"]))
        fault_point("rename")
    for parent in {_parent(target) for target in record["puts"]}:
        store.sync_folder(parent)
    _apply_delta(store, record)


def _apply_delta(store: Storage, record: dict) -> None:
    """One Delta transaction per table: overwrite the record's days of that table with its staged files (none for a
    removed day), the record's id in the commit's metadata.

    A record found again after a crash part-way through is applied again in full, tables it already reached
    included: records apply one at a time under the exclusive lock, so whatever was applied in between is
    overwritten by this record's days again and the day ends whole, as this record wrote it."""
    from deltalake.transaction import AddAction, CommitProperties, RemoveAction

    by_table: dict[str, list[dict]] = {}
    for entry in record.get("rows", []):
        by_table.setdefault(entry["table"], []).append(entry)
    for root, entries in by_table.items():
        adds: list[AddAction | RemoveAction] = []
        target = None
        for entry in entries:
            if entry["file"] is None:
                continue
            target = entry["file"]
            staged = _hidden(_parent(target), "stage", record["id"])
            if store.stages_data_files and store.exists(staged):
                store.move(staged, target)
                fault_point("rename")
            size, mtime_ms = (entry["bytes"], entry["written_ms"]) if "bytes" in entry else store.size_and_mtime_ms(target)
            adds.append(AddAction(target[len(root) + 1 :], size, {"ds": entry["ds"]}, mtime_ms, True, json.dumps({"numRecords": entry["rows"]})))
        schema = None if target is None else _delta_schema(store.parquet_schema(target))  # the table takes its newest day's schema
        opened = _delta_table(store, root, create_with=schema)
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


def _make_table(store: Storage, root: str, frame: pd.DataFrame) -> None:
    """Create a Delta table with no days, if it does not exist, before its first data file is written in place: a
    crashed or abandoned first commit then leaves a table without days (and files no version lists, for the vacuum),
    not folders that look like days of a table of files."""
    import pyarrow as pa
    from deltalake import DeltaTable

    if store.exists(f"{root}/{DELTA_LOG}"):
        return
    schema = _delta_schema(pa.Schema.from_pandas(frame.reset_index(drop=True), preserve_index=False))
    DeltaTable.create(store.delta_uri(root), schema, mode="ignore", partition_by=["ds"], configuration=DELTA_CONFIG, storage_options=store.delta_options)


def _delta_schema(data: pa.Schema) -> pa.Schema:
    """The Delta schema of a data file's columns, with ``ds`` the partition column as text (a frame may carry its own
    ``ds`` column, which the file keeps)."""
    import pyarrow as pa

    schema = data.remove_metadata()
    if "ds" in schema.names:
        return schema.set(schema.get_field_index("ds"), pa.field("ds", pa.string()))
    return schema.append(pa.field("ds", pa.string()))


@dataclass
class _OpenTable:
    """A Delta table open in this process, with its days indexed (day -> data files and rows) at its version."""

    store: Storage
    root: str
    table: DeltaTable
    stamp: tuple[int, int] | None = None
    index: tuple[int, dict[str, list[tuple[str, int]]]] | None = None
    checked_in: int | None = None
    """The shared-lock hold in which the table was last found current (see :func:`_shared_hold`)."""

    def __post_init__(self) -> None:
        self.stamp = _log_stamp(self.store, self.root, self.table.version())
        self.checked_in = _shared_hold(self.store)

    def catch_up(self) -> bool:
        """Bring the table to the log's newest version; False when the log is not the one this table was read
        from (the folder was put back from a copy), and the table must be opened anew."""
        version = self.table.version()
        if self.stamp != _log_stamp(self.store, self.root, version):
            return False
        if self.store.exists(f"{self.root}/{DELTA_LOG}/{version + 1:020d}.json"):
            try:
                self.table.update_incremental()
            except Exception as exc:  # noqa: BLE001 - any failure to catch up is answered by reopening the table
                log.info("reopening Delta table %s: %s", self.root, exc)
                return False
            self.stamp = _log_stamp(self.store, self.root, self.table.version())
        self.checked_in = _shared_hold(self.store)
        return True

    def days(self) -> dict[str, list[tuple[str, int]]]:
        """Each day's data files (keys under the lake) and row counts at the table's version."""
        import pyarrow as pa

        version = self.table.version()
        if self.index is None or self.index[0] != version:
            actions = pa.table(self.table.get_add_actions(flatten=True))
            days: dict[str, list[tuple[str, int]]] = {}
            for path, day, rows in zip(actions["path"].to_pylist(), actions["partition.ds"].to_pylist(), actions["num_records"].to_pylist(), strict=True):
                days.setdefault(day, []).append((f"{self.root}/{unquote(path)}", int(rows or 0)))
            self.index = (version, days)
        return self.index[1]


_tables: dict[tuple[str, str], _OpenTable] = {}
"""Open Delta tables of this process, by lake and table: reopening one replays its log, bringing one up to date
reads only the versions since."""


def _delta_table(store: Storage, root: str, create_with: pa.Schema | None = None) -> _OpenTable | None:
    """The Delta table at ``root``, up to date (created with schema ``create_with`` if given and missing; None if it
    does not exist)."""
    from deltalake import DeltaTable

    key = (store.key, root)
    cached = _tables.get(key)
    if cached is not None and cached.checked_in is not None and cached.checked_in == _shared_hold(store):
        return cached
    if cached is not None and cached.catch_up():
        return cached
    if not store.exists(f"{root}/{DELTA_LOG}"):
        if create_with is None:
            return None
        DeltaTable.create(store.delta_uri(root), create_with, partition_by=["ds"], configuration=DELTA_CONFIG, storage_options=store.delta_options)
    opened = _tables[key] = _OpenTable(store, root, DeltaTable(store.delta_uri(root), storage_options=store.delta_options))
    return opened


def vacuum(lake: Lake, zone: str, table: str, retention_hours: int | None = None) -> list[str]:
    """Delete the files of a Delta table that no version newer than the retention references (the table's
    ``delta.deletedFileRetentionDuration`` unless ``retention_hours`` is given); returns their paths."""
    with _locked(lake, exclusive=True):
        opened = _delta_table(storage(lake), f"{zone}/{table}")
        return [] if opened is None else _vacuum(opened, retention_hours)


def _vacuum(opened: _OpenTable, retention_hours: int | None = None) -> list[str]:
    """Delete replaced files past the retention, and in a store that writes data files in place, the files no
    version lists (a crashed writer's)."""
    full = not opened.store.stages_data_files
    removed = opened.table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=retention_hours is None, full=full)
    if removed:
        log.info("vacuumed %d replaced file(s) of %s", len(removed), opened.root)
    return removed


def forget_open_tables() -> None:
    """Drop this process's open Delta tables: the next read opens each anew, as a fresh task does."""
    _tables.clear()
    _versions.clear()


def _log_stamp(store: Storage, root: str, version: int) -> tuple[int, int] | None:
    """Which file holds a version's log entry: a table put back from a copy has other files for the same versions,
    and then an open handle's state is not the table's."""
    return store.stamp(f"{root}/{DELTA_LOG}/{version:020d}.json")


_versions: dict[tuple[str, str, int], _OpenTable] = {}
"""Tables opened at an older version (time travel), by lake, table and version."""

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


def _open(lake: Lake, zone: str, table: str, version: int | None) -> _OpenTable | None:
    """The table as readers see it: up to date, or at ``version``; None if it is not a Delta table."""
    from deltalake import DeltaTable

    store, root = storage(lake), f"{zone}/{table}"
    if version is None:
        opened = _delta_table(store, root)
    elif not store.exists(f"{root}/{DELTA_LOG}"):
        opened = None
    else:
        key = (store.key, root, version)
        opened = _versions.get(key)
        if opened is None or opened.stamp != _log_stamp(store, root, version):
            opened = _versions[key] = _OpenTable(store, root, DeltaTable(store.delta_uri(root), version=version, storage_options=store.delta_options))
    seen = _reads.get()
    if opened is not None and seen is not None:
        seen.setdefault(root, set()).add(opened.table.version())
    return opened


def _day_files(lake: Lake, zone: str, table: str, ds: str | dt.date, version: int | None = None) -> list[tuple[str, int]] | None:
    """The data files (keys under the lake) and row counts of one day of a Delta table ([] if that day is not in it;
    None if the table is not Delta)."""
    opened = _open(lake, zone, table, version)
    if opened is None:
        return None
    return opened.days().get(as_date(ds).isoformat(), [])


def _apply_serving(store: Storage, record: dict, serving_url: str, frames: dict[int, pd.DataFrame]) -> None:
    from ml import serving

    for i, entry in enumerate(record["serves"]):
        frame = frames.get(i)
        if frame is None:
            frame = store.read_parquet(entry["path"])
        serving.replace_ds(serving_url, entry["table"], entry["ds"], frame)
        fault_point("serve")


def recover(lake: Lake, serving_url: str | None) -> dict[str, int]:
    """Finish recorded commits (lake and serving store) and sweep the leftovers of crashed writers: staging and
    temporary folders whose process is gone. Every task calls this before it reads; returns what it did."""
    store = storage(lake)
    applied = len(_pending(store))
    if applied:
        with _locked(lake, exclusive=True):
            _apply_pending(store, serving_url)
        applied -= len(_pending(store))
    swept = sweep(lake)
    if applied or swept:
        log.warning("lake %s: finished %d interrupted commit(s), removed %d leftover(s) of crashed writers", store, applied, swept)
    return {"commits_finished": applied, "leftovers_removed": swept}


def sweep(lake: Lake) -> int:
    """Remove hidden staging/temporary entries whose writer is dead (same host: its pid is gone; another host:
    older than FOREIGN_LEFTOVER_AGE_S), except those a recorded commit still needs."""
    store = storage(lake)
    if not store.exists():
        return 0
    keep = {key.rpartition("/")[2].split(".")[0] for key in _pending(store)}  # a record's name starts with its id
    removed = 0
    for folder, entries in _table_folders(store):
        for entry in entries:
            tag = _leftover_tag(entry.name)
            if tag is None or tag in keep or _writer_alive(tag, entry):
                continue
            store.delete(f"{folder}/{entry.name}")
            removed += 1
    return removed


def _table_folders(store: Storage) -> Iterator[tuple[str, list[Entry]]]:
    """Every folder that holds partitions (``zone/table``, ``zone/table/shard=N``) and the commit folder, with
    what it holds."""
    yield COMMITS, store.entries(COMMITS)
    for zone in ZONES:
        stack = [zone]
        while stack:
            folder = stack.pop()
            entries = store.entries(folder)
            yield folder, entries
            stack.extend(f"{folder}/{e.name}" for e in entries if e.is_dir and not e.name.startswith(("ds=", ".")) and e.name != DELTA_LOG)


def _leftover_tag(name: str) -> str | None:
    """The tag of a hidden ``.<name>.<role>-<tag>`` entry (role stage, old or tmp), None for anything else."""
    if not name.startswith("."):
        return None
    for role in (".stage-", ".old-", ".tmp-"):
        if role in name:
            return name.rsplit(role, 1)[1]
    return None


def _writer_alive(tag: str, entry: Entry) -> bool:
    """Whether the process named in a leftover's tag may still be writing it."""
    owner = next((part for part in tag.split("-") if part.startswith("p") and "h" in part), None)
    if owner is None:
        return False
    pid_text, _, host = owner[1:].partition("h")
    if host != f"{zlib.crc32(socket.gethostname().encode()):08x}":
        written = entry.mtime if entry.mtime is not None else _tag_time(tag)  # an object store's folder has no time
        return written is None or time.time() - written < FOREIGN_LEFTOVER_AGE_S
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _tag_time(tag: str) -> float | None:
    """When a commit began, from its id (``<time_ns>-<owner>-<random>``)."""
    first = tag.split("-", 1)[0]
    return int(first) / 1e9 if first.isdigit() and len(first) == 20 else None


def write_partition(lake: Lake, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame) -> None:
    """Replace one day of a table (a commit of its own)."""
    with commit(lake, label=f"{zone}/{table}") as change:
        change.write(zone, table, ds, frame)


def _missing_day(lake: Lake, zone: str, table: str, ds: str | dt.date) -> EcomError:
    return EcomError(f"no partition {zone}/{table} for ds={as_date(ds)} under {lake}; run the ingest for that day first")


def read_partition(
    lake: Lake,
    zone: str,
    table: str,
    ds: str | dt.date,
    columns: list[str] | None = None,
    filters: list[tuple] | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """One committed day of a table (``columns`` and pyarrow ``filters`` are passed to the Parquet reader), as of
    the table's ``version`` if given."""
    with reading(lake):
        return _read_days(lake, zone, table, [as_date(ds)], version, columns, filters)


def _read_days(
    lake: Lake, zone: str, table: str, days: list[dt.date], version: int | None, columns: list[str] | None = None, filters: list[tuple] | None = None
) -> pd.DataFrame:
    """The rows of ``days`` (each must be in the table), in day order. Their files are fetched concurrently: on an
    object store each file is several round trips, and a history read has one a day. Call inside :func:`reading`."""
    store = storage(lake)
    keys = []
    for day in days:
        files = _day_files(lake, zone, table, day, version)
        if files is None and store.exists(f"{partition_key(zone, table, day)}/part-0.parquet"):
            raise EcomError(f"{zone}/{table} under {lake} is a Parquet folder table from before the lake moved to Delta tables; rebuild the lake (make demo)")
        if not files:
            raise _missing_day(lake, zone, table, day)
        keys += [key for key, _ in files]

    frames = io_map(lambda key: store.read_parquet(key, columns=columns, filters=filters), keys)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _text_key(store: Storage, zone: str, table: str, ds: str | dt.date, name: str) -> str:
    if store.exists(f"{zone}/{table}/{DELTA_LOG}"):
        return f"{partition_key(zone, f'{table}/{TEXT_FILES}', ds)}/{name}"
    return f"{partition_key(zone, table, ds)}/{name}"


def text_path(lake: Lake, zone: str, table: str, ds: str | dt.date, name: str) -> str:
    """Where a text file of a day lives (a local path or an object's URI): beside a Delta table's rows in its
    ``_files`` folder, or in a folder partition."""
    store = storage(lake)
    return _location(store, _text_key(store, zone, table, ds, name))


def read_text(lake: Lake, zone: str, table: str, ds: str | dt.date, name: str) -> str:
    """A text file of a committed day (a summary or a report stored beside the rows)."""
    store = storage(lake)
    with reading(lake):
        key = _text_key(store, zone, table, ds, name)
        if not store.exists(key):
            raise EcomError(f"no {name} in {zone}/{table} for ds={as_date(ds)} under {lake}")
        return store.read_text(key)


def read_file(lake: Lake, key: str) -> str | None:
    """A file of the lake outside any table's days (the synthetic shop's calendar), None when it is absent."""
    store = storage(lake)
    return store.read_text(key) if store.exists(key) else None


def read_partition_file(lake: Lake, zone: str, table: str, ds: str | dt.date, name: str) -> bytes | None:
    """A file of a committed folder partition (``name`` may be in a subfolder: ``report/index.html``), None when
    there is no such file. A name that climbs out of the day (``..``) is refused."""
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise EcomError(f"{zone}/{table} ds={as_date(ds)}: {name!r} is not a file name inside the day")
    store, key = storage(lake), f"{partition_key(zone, table, ds)}/{name}"
    with reading(lake):
        return store.read_bytes(key) if store.exists(key) and not store.is_dir(key) else None


def write_file(lake: Lake, key: str, text: str) -> None:
    """Write a file of the lake outside any table's days, whole or not at all (not part of a day's commit)."""
    storage(lake).put_text(key, text, _hidden(key, "tmp", _owner()))


def partition_rows(lake: Lake, zone: str, table: str, ds: str | dt.date) -> int:
    """Row count of one day of a Delta table, from its log (no data read)."""
    with reading(lake):
        files = _day_files(lake, zone, table, ds)
        if not files:
            raise _missing_day(lake, zone, table, ds)
        return sum(rows for _, rows in files)


def list_partitions(lake: Lake, zone: str, table: str, version: int | None = None) -> list[dt.date]:
    """The committed days of a table (Delta or folder partitions), oldest first (as of a Delta table's
    ``version`` if given)."""
    with reading(lake):
        opened = _open(lake, zone, table, version)
        if opened is not None:
            return sorted(as_date(day) for day in opened.days())
        return sorted(as_date(e.name[3:]) for e in storage(lake).entries(f"{zone}/{table}") if e.name.startswith("ds=") and e.is_dir)


def read_range(lake: Lake, zone: str, table: str, start: str | dt.date, end: str | dt.date, version: int | None = None) -> pd.DataFrame:
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
        if days:
            return _read_days(lake, zone, table, days, version)
    return contract.empty(table) if table in contract.TABLES else pd.DataFrame()


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


def read_latest(lake: Lake, zone: str, table: str, as_of: str | dt.date) -> pd.DataFrame:
    """The newest partition at or before ``as_of``: the snapshot of a dimension table."""
    with reading(lake):
        days = [d for d in list_partitions(lake, zone, table) if d <= as_date(as_of)]
        if not days:
            raise EcomError(f"no partition of {zone}/{table} at or before {as_date(as_of)} under {lake}")
        return read_partition(lake, zone, table, days[-1])
