"""Sharded outputs: mapped tasks each stage their rows; one publish step gathers every shard, checks them, and
replaces the ds in the lake's outputs zone and in the serving store in one lake commit.

A rerun therefore leaves exactly one set of rows for the ds, and a failed shard leaves the previous set
untouched (publish refuses to run with a shard missing)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pandas as pd

from ml import contract, lake
from ml.dates import as_date
from ml.errors import EcomError
from ml.settings import Settings


def _staging_table(table: str, shard: int) -> str:
    return f"{table}_shards/shard={shard:04d}"


def stage(settings: Settings, table: str, ds: str | dt.date, shard: int, frame: pd.DataFrame) -> int:
    """Write one shard's rows for ds (replacing an earlier attempt of the same shard); returns rows staged."""
    lake.write_partition(settings.lake, "outputs", _staging_table(table, shard), ds, frame)
    return len(frame)


def day_commit(settings: Settings, label: str, change: lake.Commit | None = None) -> contextlib.AbstractContextManager[lake.Commit]:
    """``change`` when a caller already holds the day's commit (several tables published at once), else a new one."""
    return contextlib.nullcontext(change) if change is not None else lake.commit(settings.lake, settings.serving_url, label)


def write(
    settings: Settings, table: str, ds: str | dt.date, frame: pd.DataFrame, files: dict[str, str] | None = None, change: lake.Commit | None = None
) -> int:
    """Check the rows against the output table's contract, then replace the ds in the lake's outputs zone (with
    ``files`` beside the rows) and in the serving store, in one commit (``change``, or one of its own); returns
    rows written."""
    frame = contract.check_output(table, frame)
    with day_commit(settings, f"publish {table} ds={as_date(ds)}", change) as day:
        day.write("outputs", table, ds, frame, files)
        day.serve(table, ds, "outputs", frame)
    return len(frame)


def gather(settings: Settings, table: str, ds: str | dt.date, shards: int) -> pd.DataFrame:
    """Every staged shard of ds in one frame; a clear error naming the first missing shard."""
    frames = []
    for shard in range(shards):
        try:
            frames.append(lake.read_partition(settings.lake, "outputs", _staging_table(table, shard), ds))
        except EcomError as exc:
            raise EcomError(f"{table} ds={as_date(ds)}: shard {shard} of {shards} is missing; rerun its task ({exc})") from exc
    return pd.concat(frames, ignore_index=True)


def discard_older(change: lake.Commit, table: str, ds: str | dt.date) -> None:
    """Drop, in the commit that publishes ds, the staged shards of the days before it. Those of ds stay until the
    next day's publish, so that a publish task retried after its commit (a crash, a lost heartbeat) gathers the
    same shards and commits the same day again instead of failing on missing shards."""
    for shard_table in lake.subtables(change.lake, "outputs", f"{table}_shards"):
        for day in lake.list_partitions(change.lake, "outputs", shard_table):
            if day < as_date(ds):
                change.remove("outputs", shard_table, day)


def publish(
    settings: Settings,
    table: str,
    ds: str | dt.date,
    shards: int,
    version: str | None = None,
    change: lake.Commit | None = None,
    files: dict[str, str] | None = None,
    rows: int | None = None,
) -> int:
    """Gather the ``shards`` staged shards of ds (with ``version``: check that every row's ``model_version`` is it;
    with ``rows``: that they hold that many rows), then write the ds (``files`` beside the rows), checked against
    its contract (a key repeated across shards included), and drop older days' staging in one commit (``change``,
    or one of its own)."""
    frame = gather(settings, table, ds, shards)
    if rows is not None and len(frame) != rows:
        raise EcomError(f"{table} ds={as_date(ds)}: {len(frame)} rows are staged, the step that staged them reported {rows}; rerun it")
    if version is not None:
        versions = set(frame["model_version"].astype(str))
        if versions - {str(version)}:
            raise EcomError(f"{table} ds={as_date(ds)}: staged shards come from model versions {sorted(versions)}, expected {version}")
    with day_commit(settings, f"publish {table} ds={as_date(ds)}", change) as day:
        written = write(settings, table, ds, frame, files, change=day)
        discard_older(day, table, ds)
    return written
