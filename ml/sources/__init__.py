"""Sources of raw drops. Each maps its data into the contract tables it can fill; a table a source lacks is
simply absent from its drops (and does not feed the pipelines that need it).

| source | tables it fills |
|---|---|
| synthetic | all ten contract tables (+ coupon, customer-type and abuse ground truth, stored apart) |
| files | whatever ``<table>.csv`` files the folder and its ``manifest.json`` hold (bring your own data; copied byte for byte) |
| amazon_beauty | customers, events (order only: the S3-Rec sequences carry no timestamps) |
| amazon_instruments | customers, products, events (reviews as purchases, with real timestamps) |
| movielens_100k | customers, products, events (ratings as purchases, with real timestamps) |
| bakery | products, orders, order_items (POS log: anonymous sales, no prices) |
| pharma | products, orders, order_items (daily sales of 8 ATC categories, one order per day) |
| hillstrom | customers, coupon_campaigns (the 2008 e-mail experiment) |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ml import contract
from ml.errors import ConfigError, SourceError
from ml.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SourceRequest:
    """What a land step asks of a source."""

    source: str
    ds: dt.date
    scale: str = "demo"
    seed: int = 42
    backfill_days: int | None = None
    """Days before ds that the drop covers too; None: a source's natural range (synthetic: ds only)."""
    path: str | None = None
    """Input folder or file; defaults to the dataset's folder under ECOM_SHARED_DATA."""
    allow_extra_columns: bool = False
    """Accept columns the contract does not have (ignored, and reported) instead of refusing the drop."""

    def describe(self) -> dict:
        return asdict(self) | {"ds": self.ds.isoformat()}


@dataclass
class SourceBatch:
    """A drop before it is written: contract frames (or delivered files, copied as they are, with the manifest
    entries their sender listed) and the window they cover."""

    window_start: dt.date
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    """file name -> delivered file"""
    listed: dict[str, dict] = field(default_factory=dict)
    """file name -> the sender's manifest entry (bytes, rows, sha256)"""
    ground_truth: dict[str, pd.DataFrame] = field(default_factory=dict)


Source = Callable[[Settings, SourceRequest], SourceBatch]


def in_window(tables: dict[str, pd.DataFrame], request: SourceRequest) -> SourceBatch:
    """Keep the fact rows dated in the request's window; the window starts at the earliest fact day when the
    request sets no backfill. Order lines follow their orders."""
    end = request.ds
    days = [frame[contract.table(name).time_column].dt.date.min() for name, frame in tables.items() if contract.table(name).time_column and len(frame)]
    if request.backfill_days is not None:
        start = end - dt.timedelta(days=request.backfill_days)
    elif days:
        start = min(days)
    else:
        start = end
    if start > end:
        raise SourceError(f"source {request.source!r} has no data on or before ds={end}")
    out = {}
    for name, frame in tables.items():
        col = contract.table(name).time_column
        if col:
            day = frame[col].dt.date
            frame = frame[(day >= start) & (day <= end)]
        out[name] = frame.reset_index(drop=True)
    if "order_items" in out and "orders" in out:
        out["order_items"] = out["order_items"][out["order_items"]["order_id"].isin(out["orders"]["order_id"])]
    return SourceBatch(window_start=start, tables=out)


def get_source(name: str) -> Source:
    from ml.sources import files, public, synthetic_source

    registry: dict[str, Source] = {"synthetic": synthetic_source.land, "files": files.land, **public.ADAPTERS}
    if name not in registry:
        raise ConfigError(f"unknown source {name!r}; choose one of {sorted(registry)}")
    return registry[name]


SOURCE_NAMES = (
    "synthetic",
    "files",
    "amazon_beauty",
    "amazon_instruments",
    "movielens_100k",
    "bakery",
    "pharma",
    "hillstrom",
)
