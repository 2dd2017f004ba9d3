"""Everything the forecast pipeline reads and writes: the curated orders, order lines and promotions it builds
its demand panel from, each shard's staged forecasts, and the publish of ``demand_forecasts``."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.forecast import data
from ml.settings import Settings

TABLE = "demand_forecasts"


def load_panel(settings: Settings, ds: dt.date, history_days: int) -> data.Panel:
    """Daily demand per (product, warehouse) over the ``history_days`` through ds, zeros filled up to ds (a day
    inside the range that was never published is refused by ``lake.read_range``, never read as zero)."""
    start = ds - dt.timedelta(days=history_days - 1)
    orders = lake.read_range(settings.lake_dir, "curated", "orders", start, ds)
    items = lake.read_range(settings.lake_dir, "curated", "order_items", start, ds)
    if orders.empty:
        raise EcomError(f"orders: no curated partitions in {start}..{ds} under {settings.lake_dir}; run ecom_ingest first")
    first_sale = orders["order_ts"].min().tz_convert("UTC").date()
    panel = data.daily_demand(orders, items, start=str(max(start, first_sale)), end=str(ds))
    if lake.list_partitions(settings.lake_dir, "curated", "promotions"):
        promotions = lake.read_latest(settings.lake_dir, "curated", "promotions", ds)
        panel.discount = data.promotion_calendar(promotions, panel.keys, panel.dates[0], len(panel.dates) + data.PROMOTION_LOOKAHEAD)
    return panel


def stage_forecasts(settings: Settings, ds: dt.date, shard: int, rows: pd.DataFrame) -> int:
    return staging.stage(settings, TABLE, ds, shard, rows)


def publish(settings: Settings, ds: dt.date, shards: int, version: str) -> int:
    """Gather the staged shards of ds (all from ``version``) and replace the ds; returns rows written."""
    return staging.publish(settings, TABLE, ds, shards, version=version)
