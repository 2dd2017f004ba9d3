"""The manifest of a delivery: every file with its byte size, row count and SHA-256.

The sender writes it (``ecom manifest FOLDER``, or the land step for the built-in sources) and the gate checks the
drop against it, so that a missing, extra, renamed, truncated or altered file is refused instead of read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from ml.errors import SourceError

MANIFEST = "manifest.json"
CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
            f"missing, truncated or altered file is caught; write it where the files are produced: ecom manifest {folder}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path} is not valid JSON: {exc}") from exc
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise SourceError(f"{path} lists no files (expected {{\"files\": {{\"orders.csv\": {{\"bytes\", \"rows\", \"sha256\"}}}}}})")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not {"bytes", "rows", "sha256"} <= set(entry):
            raise SourceError(f"{path}: entry {name!r} needs bytes, rows and sha256, got {entry!r}")
    return manifest
