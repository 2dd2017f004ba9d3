"""The lake: partitions ``<lake>/<zone>/<table>/ds=YYYY-MM-DD/`` written atomically.

A partition is written into a hidden sibling folder and renamed into place, so a crash leaves either the old
partition or the new one, never half of one. Curated zones hold Parquet; the raw zone holds drops as received
(CSV), because parsing them is part of what the validation gate checks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ml import contract
from ml.dates import as_date
from ml.errors import EcomError

__all__ = ["MissingPartitionsError", "as_date", "atomic_dir", "day_ranges", "list_partitions", "partition_dir", "partition_rows", "read_latest",
           "read_partition", "read_range", "write_partition"]

ZONES = ("raw", "curated", "features", "outputs", "quarantine", "reports", "ground_truth")
PARQUET_FILE = "part-0.parquet"


def partition_dir(lake: Path, zone: str, table: str, ds: str | dt.date) -> Path:
    if zone not in ZONES:
        raise EcomError(f"unknown lake zone {zone!r}; zones are {ZONES}")
    return Path(lake) / zone / table / f"ds={as_date(ds).isoformat()}"


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` whole, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            _fsync(f)
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def write_partition(lake: Path, zone: str, table: str, ds: str | dt.date, frame: pd.DataFrame) -> Path:
    """Replace one Parquet partition atomically; returns its folder."""
    target = partition_dir(lake, zone, table, ds)
    with atomic_dir(target) as tmp:
        frame.reset_index(drop=True).to_parquet(tmp / PARQUET_FILE, index=False)
    return target


def read_partition(lake: Path, zone: str, table: str, ds: str | dt.date) -> pd.DataFrame:
    path = partition_dir(lake, zone, table, ds) / PARQUET_FILE
    if not path.exists():
        raise EcomError(f"no partition {zone}/{table} for ds={as_date(ds)} under {lake}; run the ingest for that day first")
    return pd.read_parquet(path)


def partition_rows(lake: Path, zone: str, table: str, ds: str | dt.date) -> int:
    """Row count of a Parquet partition, from its metadata (no data read)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(partition_dir(lake, zone, table, ds) / PARQUET_FILE).metadata.num_rows


def list_partitions(lake: Path, zone: str, table: str) -> list[dt.date]:
    """The dates of the complete partitions of a table, oldest first."""
    root = Path(lake) / zone / table
    if not root.exists():
        return []
    return sorted(as_date(p.name[3:]) for p in root.iterdir() if p.name.startswith("ds=") and p.is_dir())


def read_range(lake: Path, zone: str, table: str, start: str | dt.date, end: str | dt.date) -> pd.DataFrame:
    """Concatenate the partitions with start <= ds <= end (an empty contract frame when the table has none yet).

    Missing is not zero: every day from the table's first partition (or ``start``, if later) through ``end`` must
    be there, because a published day with no rows is a zero and a missing day is unknown. A gap raises
    :class:`MissingPartitionsError` naming the missing days."""
    lo, hi = as_date(start), as_date(end)
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
            f"without rows; land them (ecom_ingest with backfill_days, or Param fill_gap=true) before reading this range")


def read_latest(lake: Path, zone: str, table: str, as_of: str | dt.date) -> pd.DataFrame:
    """The newest partition at or before ``as_of``: the snapshot of a dimension table."""
    days = [d for d in list_partitions(lake, zone, table) if d <= as_date(as_of)]
    if not days:
        raise EcomError(f"no partition of {zone}/{table} at or before {as_date(as_of)} under {lake}")
    return read_partition(lake, zone, table, days[-1])
