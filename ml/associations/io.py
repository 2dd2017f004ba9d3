"""Everything the associations pipeline reads and writes: the curated orders and order lines of the mining window,
the staged rules, and the publish of ``product_associations``."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.settings import Settings

TABLE = "product_associations"


def load_orders(settings: Settings, ds: dt.date, window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curated orders and order lines of the ``window_days`` through ds (a missing day is refused, never read as
    a day without sales)."""
    start = ds - dt.timedelta(days=window_days - 1)
    orders = lake.read_range(settings.lake, "curated", "orders", start, ds)
    if orders.empty:
        raise EcomError(f"orders: no curated rows in {start}..{ds} under {settings.lake}; run ecom_ingest first")
    return orders, lake.read_range(settings.lake, "curated", "order_items", start, ds)


def stage_rules(settings: Settings, ds: dt.date, rows: pd.DataFrame) -> int:
    return staging.stage(settings, TABLE, ds, 0, rows)


def publish(settings: Settings, ds: dt.date) -> int:
    """Replace ds's rules with the staged ones; returns rows written."""
    return staging.publish(settings, TABLE, ds, 1)
