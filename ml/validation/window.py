"""What the curated lake knows about the days before a drop: the window's bounds, fact tables' rows per day and
dimension snapshot sizes (the volume checks compare the drop with them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ml import contract, lake

VOLUME_HISTORY_DAYS = 28
VOLUME_BOUNDS = (0.2, 5.0)
"""A fact table's rows per day must stay within these multiples of its median over the previous days."""


@dataclass(frozen=True)
class BatchWindow:
    """The days a drop covers and what the lake says about the previous days."""

    start: dt.date
    end: dt.date
    previous_rows_per_day: dict[str, float]  # median rows/day of each fact table over the previous days
    previous_snapshot_rows: dict[str, int]  # rows of each dimension table's latest snapshot

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def batch_window(lake_root: lake.Lake, start: dt.date, end: dt.date, tables: list[str]) -> BatchWindow:
    """What the curated lake knows before ``start``: rows per day of fact tables, snapshot sizes of dimensions."""
    per_day, snapshot = {}, {}
    for name in tables:
        spec = contract.table(name)
        days = [d for d in lake.list_partitions(lake_root, "curated", name) if d < start]
        if not days:
            continue
        if spec.kind == "fact" and spec.expect_daily:
            recent = days[-VOLUME_HISTORY_DAYS:]
            counts = [lake.partition_rows(lake_root, "curated", name, d) for d in recent]
            per_day[name] = float(np.median(counts))
        elif spec.kind == "dimension":
            snapshot[name] = lake.partition_rows(lake_root, "curated", name, days[-1])
    return BatchWindow(start=start, end=end, previous_rows_per_day=per_day, previous_snapshot_rows=snapshot)
