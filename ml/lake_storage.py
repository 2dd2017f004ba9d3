"""Where the lake's bytes live: a local folder (the embedded default) or an S3 bucket (``s3://bucket/prefix``).

:mod:`ml.lake`'s commit protocol needs a handful of operations, and each store does them with what it has. A local
folder renames, fsyncs and flocks. An object store has no rename and no file lock: a staged folder is copied into
place file by file from the list written in the commit record (so a roll-forward after a crash part-way repeats
it safely), and the lake's lock is a PostgreSQL advisory lock, which the server releases when a holder's connection
dies, as the kernel releases a dead process's flock. Paths given to a store are relative to the lake's root, with
``/`` separators.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import pandas as pd

from ml.errors import EcomError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

LOCK_URL_ENV = "ECOM_LAKE_LOCK_URL"
IO_THREADS = 16
"""Requests in flight when an object store copies or deletes many objects (each waits on the network, not the CPU)."""
COMMITS = "_commits"


def io_map(fn: Callable[..., T], *items: Iterable) -> list[T]:
    """``list(map(fn, *items))`` with up to IO_THREADS calls in flight (one call runs inline): for calls that wait on
    a file or the network, such as one request per object."""
    args = list(zip(*items, strict=True))
    if len(args) <= 1:
        return [fn(*a) for a in args]
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(lambda a: fn(*a), args))


LOCK_FILE = ".lock"
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A child of a folder: its name, whether it is a folder, and when it was last written (None if unknown: an
    object store's folders are only prefixes)."""

    name: str
    is_dir: bool
    mtime: float | None


class LocalStorage:
    """The lake in a folder of this machine's file system."""

    stages_data_files = True
    """A data file is written under a hidden name and renamed into place when its commit applies, so a crashed
    writer's files are hidden ones that :func:`ml.lake.sweep` can tell from the table's."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.key = str(self.root.resolve())
        self.delta_options: dict[str, str] | None = None

    def __str__(self) -> str:
        return str(self.root)

    def path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def exists(self, rel: str = "") -> bool:
        return self.path(rel).exists()

    def missing(self) -> bool:
        """Whether there is no lake here yet (a read must not create its folder by taking the lock)."""
        return not self.root.exists()

    def is_dir(self, rel: str) -> bool:
        return self.path(rel).is_dir()

    def entries(self, rel: str) -> list[Entry]:
        try:
            with os.scandir(self.path(rel)) as found:
                return [Entry(e.name, e.is_dir(follow_symlinks=False), e.stat(follow_symlinks=False).st_mtime) for e in found]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def files_under(self, rel: str) -> list[str]:
        """Every file below ``rel`` (relative to it), sorted."""
        root = self.path(rel)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def read_bytes(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def read_text(self, rel: str) -> str:
        return self.path(rel).read_text()

    def put_text(self, rel: str, text: str, tmp_rel: str) -> None:
        """Write a file atomically and durably: a reader sees the whole text or no file."""
        path, tmp = self.path(rel), self.path(tmp_rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def write_parquet(self, rel: str, frame: pd.DataFrame) -> int:
        """Write a data file durably; returns its size in bytes."""
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.reset_index(drop=True).to_parquet(path, index=False)
        _fsync(path)
        return path.stat().st_size

    def read_parquet(self, rel: str, columns: list[str] | None = None, filters: list[tuple] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path(rel), columns=columns, filters=filters)

    def parquet_schema(self, rel: str) -> pa.Schema:
        import pyarrow.parquet as pq

        return pq.read_schema(self.path(rel))

    def size_and_mtime_ms(self, rel: str) -> tuple[int, int]:
        stat = self.path(rel).stat()
        return stat.st_size, int(stat.st_mtime * 1000)

    def stamp(self, rel: str) -> tuple[int, int] | None:
        """Which file this is (inode, creation time): another file written at the same path has another stamp."""
        try:
            stat = self.path(rel).stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_ctime_ns

    def move(self, src: str, dst: str) -> None:
        """Rename a file (replacing ``dst``)."""
        self.path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src), self.path(dst))

    def put_folder(self, staged: str, target: str, old: str, files: list[str] | None) -> bool:
        """Make the staged folder the target (the target's previous files go): two renames. False when there was
        nothing staged (already applied)."""
        staged_path, target_path, old_path = self.path(staged), self.path(target), self.path(old)
        moved = staged_path.exists()
        if moved:
            if target_path.exists():
                os.replace(target_path, old_path)
            os.replace(staged_path, target_path)
        shutil.rmtree(old_path, ignore_errors=True)
        return moved

    def drop_folder(self, target: str, old: str) -> bool:
        target_path, old_path = self.path(target), self.path(old)
        dropped = target_path.exists()
        if dropped:
            os.replace(target_path, old_path)
        shutil.rmtree(old_path, ignore_errors=True)
        return dropped

    def delete(self, rel: str) -> None:
        path = self.path(rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def sync_folder(self, rel: str) -> None:
        _fsync_dir(self.path(rel))

    def new_folder(self, rel: str) -> Path:
        """A folder to fill with files, staged at ``rel``."""
        path = self.path(rel)
        path.mkdir(parents=True)
        return path

    def seal_folder(self, rel: str, local: Path) -> list[str]:
        """Make a filled staged folder durable; returns its files (relative paths)."""
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        for name in files:
            _fsync(local / name)
        return files

    @contextlib.contextmanager
    def local_folder(self, rel: str) -> Iterator[Path]:
        """A folder partition where local tools can read it: here, the folder itself."""
        yield self.path(rel)

    def delta_uri(self, rel: str) -> str:
        return str(self.path(rel))

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        """flock on ``<lake>/_commits/.lock``."""
        folder = self.path(COMMITS)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


class S3Storage:
    """The lake under ``s3://bucket/prefix``: AWS S3 or an S3-compatible store (MinIO, moto's server), reached with
    the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, and
    ``AWS_ENDPOINT_URL`` for a store other than AWS). Its commit lock is a PostgreSQL advisory lock on the database
    at ``ECOM_LAKE_LOCK_URL``."""

    stages_data_files = False
    """A data file is written where it will stay: a Delta table's readers see only the files its log lists, so it is
    invisible until its commit's transaction adds it, and a rename would copy it. A crashed writer's files are
    deleted by the table's full vacuum once older than its retention."""

    def __init__(self, uri: str, env: dict[str, str] | None = None):
        env = dict(os.environ if env is None else env)
        parts = urlsplit(uri)
        if not parts.netloc:
            raise EcomError(f"lake URI {uri!r}: expected s3://bucket/prefix")
        self.uri = uri.rstrip("/")
        self.key = self.uri
        self.base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        self.lock_url = env.get(LOCK_URL_ENV)
        if not self.lock_url:
            raise EcomError(
                f"lake {uri}: an object-store lake needs {LOCK_URL_ENV}, the PostgreSQL database whose advisory locks order "
                "its commits (the serving store's database will do), e.g. postgresql://user@host:5432/ecom"
            )
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.endpoint = endpoint
        self.region = region
        self.delta_options = {"AWS_REGION": region, "conditional_put": "etag"}
        key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        self.credentials = (key_id, secret, env.get("AWS_SESSION_TOKEN")) if key_id and secret else None
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if env.get(name):
                self.delta_options[name] = env[name]
        if endpoint:
            self.delta_options["AWS_ENDPOINT_URL"] = endpoint
            self.delta_options["AWS_ALLOW_HTTP"] = str(endpoint.startswith("http://")).lower()
        self._fs: pafs.S3FileSystem | None = None
        self._fs_pid = 0

    def __str__(self) -> str:
        return self.uri

    @property
    def fs(self) -> pafs.S3FileSystem:
        """The pyarrow S3 client of this process (a forked child makes its own)."""
        if self._fs is None or self._fs_pid != os.getpid():
            import pyarrow.fs as pafs

            # A delayed open writes a small object with one PUT instead of a three-request multipart upload.
            options: dict = {"region": self.region, "allow_delayed_open": True}
            if self.credentials:  # else the AWS default chain (instance role, profile)
                options |= {"access_key": self.credentials[0], "secret_key": self.credentials[1], "session_token": self.credentials[2]}
            if self.endpoint:
                endpoint = urlsplit(self.endpoint)
                options |= {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme or "https"}
            self._fs, self._fs_pid = pafs.S3FileSystem(**options), os.getpid()
        return self._fs

    def path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def _info(self, rel: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path(rel))

    def exists(self, rel: str = "") -> bool:
        import pyarrow.fs as pafs

        return self._info(rel).type != pafs.FileType.NotFound

    def missing(self) -> bool:
        """Never: a read creates nothing in an object store (its lock is in PostgreSQL), so it need not ask."""
        return False

    def is_dir(self, rel: str) -> bool:
        import pyarrow.fs as pafs

        return self._info(rel).type == pafs.FileType.Directory

    def entries(self, rel: str) -> list[Entry]:
        import pyarrow.fs as pafs

        found = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return [Entry(info.base_name, info.type == pafs.FileType.Directory, info.mtime.timestamp() if info.mtime else None) for info in found]

    def files_under(self, rel: str) -> list[str]:
        """Every object below ``rel`` (relative to it), sorted."""
        import pyarrow.fs as pafs

        root = self.path(rel)
        found = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return sorted(info.path[len(root) + 1 :] for info in found if info.type == pafs.FileType.File)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as stream:
            return stream.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def put_text(self, rel: str, text: str, tmp_rel: str) -> None:
        """One PUT: an object is visible whole or not at all."""
        with self.fs.open_output_stream(self.path(rel)) as stream:
            stream.write(text.encode())

    def write_parquet(self, rel: str, frame: pd.DataFrame) -> int:
        """Write a data file (one PUT, or a multipart upload); returns its size in bytes."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        with self.fs.open_output_stream(self.path(rel)) as stream:
            pq.write_table(table, stream)
            return stream.tell()

    def read_parquet(self, rel: str, columns: list[str] | None = None, filters: list[tuple] | None = None) -> pd.DataFrame:
        """The whole object in one GET, then decoded here: a lake's data files are a day of one table, and reading
        through pyarrow's S3 file (a HEAD, then a GET for the footer and more for the columns) took twice the
        time and the requests."""
        return pd.read_parquet(io.BytesIO(self.read_bytes(rel)), columns=columns, filters=filters)

    def parquet_schema(self, rel: str) -> pa.Schema:
        import pyarrow.parquet as pq

        return pq.read_schema(self.path(rel), filesystem=self.fs)

    def size_and_mtime_ms(self, rel: str) -> tuple[int, int]:
        info = self._info(rel)
        return int(info.size or 0), int(info.mtime.timestamp() * 1000) if info.mtime else 0

    def stamp(self, rel: str) -> tuple[int, int] | None:
        """Which object this is (size, time written): another object written at the same key has another stamp."""
        import pyarrow.fs as pafs

        info = self._info(rel)
        if info.type == pafs.FileType.NotFound:
            return None
        return int(info.size or 0), info.mtime_ns or 0

    def move(self, src: str, dst: str) -> None:
        """Copy, then delete the source: a crash between them leaves both, and the move is repeated."""
        self.fs.copy_file(self.path(src), self.path(dst))
        self.fs.delete_file(self.path(src))

    def put_folder(self, staged: str, target: str, old: str, files: list[str] | None) -> bool:
        """Copy every listed file of the staged folder over the target's, delete the target's other files, then the
        staged folder. Every step can be repeated after a crash: a listed file still staged is copied again (the
        staged copies are deleted only after all were copied)."""
        if files is None:
            raise EcomError(f"lake {self.uri}: the commit record lists no files for {target}; it was written by an older version")
        present = set(self.files_under(staged))
        copies = [(self.path(f"{staged}/{name}"), self.path(f"{target}/{name}")) for name in files if name in present]
        listed = set(files)
        stale = [self.path(f"{target}/{name}") for name in self.files_under(target) if name not in listed]
        io_map(self.fs.copy_file, [src for src, _ in copies], [dst for _, dst in copies])
        io_map(self.fs.delete_file, stale)
        self.delete(staged)
        return bool(copies)

    def drop_folder(self, target: str, old: str) -> bool:
        dropped = self.exists(target)
        self.delete(target)
        return dropped

    def delete(self, rel: str) -> None:
        import pyarrow.fs as pafs

        info = self._info(rel)
        if info.type == pafs.FileType.Directory and "/" not in self.path(rel):  # a lake at the bucket's root keeps its bucket
            self.fs.delete_dir_contents(self.path(rel))
        elif info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path(rel))

    def sync_folder(self, rel: str) -> None:
        """Objects are durable once written."""

    def new_folder(self, rel: str) -> Path:
        """A local folder to fill with files; :meth:`seal_folder` uploads it to ``rel``."""
        return Path(tempfile.mkdtemp(prefix="ecom-stage-"))

    def seal_folder(self, rel: str, local: Path) -> list[str]:
        """Upload the folder's files, one PUT each, on several threads (a report folder holds a hundred small
        files). Not pyarrow's copy_files: it creates every folder level as an empty marker object, with a HEAD
        before each, which more than doubled the requests of a validation report's upload."""
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        io_map(lambda name: self._upload(local / name, f"{rel}/{name}"), files)
        shutil.rmtree(local, ignore_errors=True)
        return files

    def _upload(self, source: Path, rel: str) -> None:
        with self.fs.open_output_stream(self.path(rel)) as stream:
            stream.write(source.read_bytes())

    @contextlib.contextmanager
    def local_folder(self, rel: str) -> Iterator[Path]:
        """A folder partition where local tools can read it: a temporary copy, removed afterwards."""
        import pyarrow.fs as pafs

        local = Path(tempfile.mkdtemp(prefix="ecom-read-"))
        try:
            if self.is_dir(rel):
                pafs.copy_files(self.path(rel), str(local), source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
            yield local
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def delta_uri(self, rel: str) -> str:
        return f"s3://{self.path(rel)}"

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        """A session-level PostgreSQL advisory lock keyed by the lake's URI: shared for reads, exclusive for
        applying commits. It is held on a connection of this thread and process, so a holder that dies releases it."""
        connection = _lock_connection(self.lock_url or "")
        lock_key = (0x65636F6D, _signed32(zlib.crc32(self.uri.encode())))  # ("ecom", the lake)
        suffix = "" if exclusive else "_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_lock{suffix}(%s, %s)", lock_key)
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock{suffix}(%s, %s)", lock_key)


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


_connections = threading.local()


def _lock_connection(url: str):  # noqa: ANN202 - a psycopg2 connection, typed loosely to keep psycopg2 optional
    """This thread's connection for lake locks (a forked child opens its own: a shared socket would mix sessions)."""
    import psycopg2

    cached = getattr(_connections, "by_url", {})
    key = (url, os.getpid())
    connection = cached.get(key)
    if connection is None or connection.closed:
        connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1))
        connection.autocommit = True
        cached = {k: v for k, v in cached.items() if k[1] == os.getpid()} | {key: connection}
        _connections.by_url = cached
    return connection


Storage = LocalStorage | S3Storage

_stores: dict[str, Storage] = {}


def storage(lake: str | os.PathLike[str]) -> Storage:
    """The store of a lake given as a local path or an ``s3://`` URI (one per lake and process)."""
    text = str(lake)
    found = _stores.get(text)
    if found is None:
        scheme = urlsplit(text).scheme
        if scheme == "s3":
            found = S3Storage(text)
        elif scheme in ("", "file"):
            found = LocalStorage(Path(text.removeprefix("file://")))
        else:
            raise EcomError(f"lake URI {text!r}: a lake is a local path or s3://bucket/prefix, not {scheme}://")
        _stores[text] = found
    return found


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
