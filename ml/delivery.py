"""The manifest of a delivery: every file with its byte size, row count and SHA-256.

The sender writes it (``ecom manifest FOLDER``, or the land step for the built-in sources) and the gate checks the
drop against it, so that a missing, extra, renamed, truncated or altered file is refused instead of read.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ml import contract
from ml.errors import SourceError
from ml.validation.report import Failure

MANIFEST = "manifest.json"
CHUNK = 1 << 20


def sha256(path: Path) -> str:
    """The file's SHA-256, computed once per version of the file in this process (land, the gate and publish
    each need it, and a commit renames the file in between; a rewritten file has a new size or modification time,
    a copy a new inode, and is hashed again)."""
    stat = Path(path).stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (records after the header; quoted newlines stay inside their record)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def describe(path: Path, rows: int | None = None) -> dict:
    """A manifest entry: ``rows`` when the writer knows it, else counted."""
    return {"bytes": path.stat().st_size, "rows": count_rows(path) if rows is None else int(rows), "sha256": sha256(path)}


def delivered_files(folder: Path) -> list[Path]:
    """The files a folder delivers: every regular, visible file but the manifest."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def write_manifest(folder: Path) -> dict:
    """Describe every file of ``folder`` in ``folder/manifest.json`` (written atomically); returns the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder")
    files = delivered_files(folder)
    if not files:
        raise SourceError(f"{folder} holds no files to describe")
    manifest = {"files": {p.name: describe(p) for p in files}}
    tmp = folder / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)
    return manifest


def read_manifest(folder: Path) -> dict:
    """The manifest a sender put in ``folder``; a clear error when there is none or it lists no files."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise SourceError(
            f"{folder} has no {MANIFEST}. A delivery lists each file with its size, row count and SHA-256 so that a "
            f"missing, truncated or altered file is caught; write it where the files are produced: ecom manifest {folder}"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path} is not valid JSON: {exc}") from exc
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise SourceError(f'{path} lists no files (expected {{"files": {{"orders.csv": {{"bytes", "rows", "sha256"}}}}}})')
    for name, entry in files.items():
        if not isinstance(entry, dict) or not {"bytes", "rows", "sha256"} <= set(entry):
            raise SourceError(f"{path}: entry {name!r} needs bytes, rows and sha256, got {entry!r}")
    return manifest


# ---------------------------------------------------------------- the gate's first layer


@dataclass(frozen=True)
class Drop:
    """A drop folder and what its manifest lists (file name -> bytes, rows, sha256)."""

    folder: Path
    listed: dict[str, dict]
    allow_extra_columns: bool = False

    def present(self) -> list[str]:
        return [p.name for p in delivered_files(self.folder)]

    def tables(self) -> dict[str, Path]:
        """Contract table -> file, for the files that are named after a table and listed."""
        return {
            name.removesuffix(".csv"): self.folder / name
            for name in self.present()
            if name in self.listed and name.removesuffix(".csv") in contract.TABLES and name.endswith(".csv")
        }


def did_you_mean(name: str, choices: list[str]) -> str:
    folded = {c.casefold(): c for c in choices}
    match = folded.get(name.casefold()) or next(iter(difflib.get_close_matches(name, choices, n=1, cutoff=0.75)), None)
    return f" (did you mean {match!r}?)" if match else ""


def delivery_failures(drop: Drop) -> tuple[list[Failure], int]:
    """The drop's files against its manifest and the contract's file names; returns failures and checks run."""
    expected = [f"{t}.csv" for t in contract.TABLES]
    present = drop.present()
    failures, checks = [], 0
    for name in sorted(set(drop.listed) | set(present)):
        checks += 1
        table = name.removesuffix(".csv")
        if name not in expected:
            failures.append(
                Failure(
                    table,
                    "file_named_after_table",
                    None,
                    f"{name} is not a contract table's file{did_you_mean(name, expected)}; files are <table>.csv for "
                    f"{sorted(contract.TABLES)} (names are case-sensitive)",
                )
            )
        elif name not in present:
            failures.append(
                Failure(table, "file_in_manifest_delivered", None, f"{name} is listed in the manifest but was not delivered{did_you_mean(name, present)}")
            )
        elif name not in drop.listed:
            failures.append(
                Failure(
                    table,
                    "file_listed_in_manifest",
                    None,
                    f"{name} was delivered but the manifest does not list it{did_you_mean(name, list(drop.listed))}; "
                    "rewrite the manifest where the files are produced (ecom manifest FOLDER)",
                )
            )
        else:
            failures += _content_matches(drop, name)
    tables = drop.tables()
    for name in tables:
        parent = contract.table(name).placed_by
        if parent is not None:
            checks += 1
            if parent.table not in tables:
                failures.append(
                    Failure(
                        name,
                        "parent_table_in_drop",
                        parent.column,
                        f"{name} rows are placed on the day of their {parent.table} row, but the drop has no "
                        f"{parent.table}.csv; deliver {parent.table} with {name}",
                    )
                )
    return failures, checks


def _content_matches(drop: Drop, name: str) -> list[Failure]:
    listed, path = drop.listed[name], drop.folder / name
    size = path.stat().st_size
    table = name.removesuffix(".csv")
    if size != listed["bytes"]:
        state = "truncated" if size < listed["bytes"] else "longer than listed"
        return [
            Failure(table, "file_matches_manifest", None, f"{name} has {size} bytes, the manifest lists {listed['bytes']}: the file is {state}; re-send it")
        ]
    if sha256(path) != listed["sha256"]:
        return [
            Failure(
                table,
                "file_matches_manifest",
                None,
                f"{name}: SHA-256 differs from the manifest's with the same size: the file was altered after the "
                "manifest was written; re-send it (or rewrite the manifest where the file is produced)",
            )
        ]
    return []
