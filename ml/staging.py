"""Sharded outputs: mapped tasks each stage their rows; one publish step gathers every shard, checks them, and
replaces the ds in the lake's outputs zone and in the serving store at once.

A rerun therefore leaves exactly one set of rows for the ds, and a failed shard leaves the previous set
untouched (publish refuses to run with a shard missing)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml import lake, serving
from ml.dates import as_date
from ml.errors import EcomError
from ml.settings import Settings


def shard_of(ids: np.ndarray | pd.Series, shards: int) -> np.ndarray:
    """Stable shard number per id (the same in every process and on every day)."""
    hashed = pd.util.hash_pandas_object(pd.Series(np.asarray(ids, dtype=str), dtype=object), index=False)
    return (hashed.to_numpy() % np.uint64(shards)).astype(np.int64)


def _staging_table(table: str, shard: int) -> str:
    return f"{table}_shards/shard={shard:04d}"


def stage(settings: Settings, table: str, ds: str | dt.date, shard: int, frame: pd.DataFrame) -> int:
    """Write one shard's rows for ds (replacing an earlier attempt of the same shard); returns rows staged."""
    lake.write_partition(settings.lake_dir, "outputs", _staging_table(table, shard), ds, frame)
    return len(frame)


def write(settings: Settings, table: str, ds: str | dt.date, frame: pd.DataFrame) -> int:
    """Replace the ds in the lake's outputs zone and in the serving store; returns rows written."""
    lake.write_partition(settings.lake_dir, "outputs", table, ds, frame)
    return serving.replace_ds(settings.serving_url, table, ds, frame)


def gather(settings: Settings, table: str, ds: str | dt.date, shards: int) -> pd.DataFrame:
    """Every staged shard of ds in one frame; a clear error naming the first missing shard."""
    frames = []
    for shard in range(shards):
        try:
            frames.append(lake.read_partition(settings.lake_dir, "outputs", _staging_table(table, shard), ds))
        except EcomError as exc:
            raise EcomError(f"{table} ds={as_date(ds)}: shard {shard} of {shards} is missing; rerun its task ({exc})") from exc
    return pd.concat(frames, ignore_index=True)


def discard(settings: Settings, table: str, ds: str | dt.date, shards: int) -> None:
    """Drop the staged shards of ds (after they were published)."""
    for shard in range(shards):
        shutil.rmtree(lake.partition_dir(settings.lake_dir, "outputs", _staging_table(table, shard), ds), ignore_errors=True)


def publish(settings: Settings, table: str, ds: str | dt.date, shards: int, key: Sequence[str],
            version: str | None = None) -> int:
    """Gather the ``shards`` staged shards of ds, check that the ``key`` columns are unique across them (and,
    with ``version``, that every row's ``model_version`` is it), write the ds, then drop the staging."""
    frame = gather(settings, table, ds, shards)
    if version is not None:
        versions = set(frame["model_version"].astype(str))
        if versions - {str(version)}:
            raise EcomError(f"{table} ds={as_date(ds)}: staged shards come from model versions {sorted(versions)}, expected {version}")
    duplicated = frame.duplicated(list(key))
    if duplicated.any():
        raise EcomError(f"{table} ds={as_date(ds)}: {int(duplicated.sum())} duplicated {tuple(key)} rows across shards, "
                        f"e.g. {frame.loc[duplicated, list(key)].head(3).to_dict('records')}")
    rows = write(settings, table, ds, frame)
    discard(settings, table, ds, shards)
    return rows
