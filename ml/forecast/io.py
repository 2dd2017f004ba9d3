"""Everything the forecast pipeline reads and writes: the curated orders, order lines and promotions it builds
its demand panel from, each shard's staged forecasts, and the publish of ``demand_forecasts``."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.forecast import data
from ml.settings import Settings

log = logging.getLogger(__name__)

TABLE = "demand_forecasts"


def load_panel(settings: Settings, ds: dt.date, history_days: int, frequency: str = "auto") -> data.Panel:
    """Demand per (product, warehouse) and period (``frequency``: daily, weekly, or auto: as the sales show) over
    the ``history_days`` through ds, zeros filled up to ds (a day inside the range that was never published is
    refused by ``lake.read_range``, never read as zero)."""
    start = ds - dt.timedelta(days=history_days - 1)
    orders = lake.read_range(settings.lake, "curated", "orders", start, ds)
    items = lake.read_range(settings.lake, "curated", "order_items", start, ds)
    if orders.empty:
        raise EcomError(f"orders: no curated partitions in {start}..{ds} under {settings.lake}; run ecom_ingest first")
    first_sale = orders["order_ts"].min().tz_convert("UTC").date()
    chosen = None if frequency == "auto" else data.frequency_of(frequency)
    panel = data.demand_panel(orders, items, start=str(max(start, first_sale)), end=str(ds), frequency=chosen)
    if not lake.list_partitions(settings.lake, "curated", "promotions"):
        return panel
    if panel.frequency.days > 1:
        log.warning("demand is %s: the promotion calendar (daily) is not used", panel.frequency.name)
        return panel
    promotions = lake.read_latest(settings.lake, "curated", "promotions", ds)
    panel.discount = data.promotion_calendar(promotions, panel.keys, panel.dates[0], len(panel.dates) + data.PROMOTION_LOOKAHEAD)
    return panel


def stage_forecasts(settings: Settings, ds: dt.date, shard: int, rows: pd.DataFrame) -> int:
    return staging.stage(settings, TABLE, ds, shard, rows)


def publish(settings: Settings, ds: dt.date, shards: int, version: str) -> int:
    """Gather the staged shards of ds (all from ``version``) and replace the ds; returns rows written."""
    return staging.publish(settings, TABLE, ds, shards, version=version)
