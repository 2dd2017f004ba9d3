"""Everything the risk pipeline reads and writes: the curated orders, lines, customers and chargebacks, the
training set kept in the features zone for the gate, and the publish of ``order_risk``."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.settings import Settings

TABLE = "order_risk"
TRAINING_SET = "risk_training"


def load_tables(settings: Settings, start: dt.date, ds: dt.date) -> dict[str, pd.DataFrame]:
    """Orders and their lines placed in start..ds, the customers at ds, and the chargebacks reported through ds
    (a missing day is refused, never read as a day without orders)."""
    orders = lake.read_range(settings.lake, "curated", "orders", start, ds)
    if orders.empty:
        raise EcomError(f"orders: no curated rows in {start}..{ds} under {settings.lake}; run ecom_ingest first")
    if not lake.list_partitions(settings.lake, "curated", "chargebacks"):
        raise EcomError(f"chargebacks: no curated partitions under {settings.lake}: the risk model learns from chargebacks; land a source that has them")
    return {
        "orders": orders,
        "items": lake.read_range(settings.lake, "curated", "order_items", start, ds),
        "customers": lake.read_latest(settings.lake, "curated", "customers", ds),
        "chargebacks": lake.read_range(settings.lake, "curated", "chargebacks", start, ds),
    }


def write_training_set(settings: Settings, ds: dt.date, rows: pd.DataFrame) -> None:
    """Keep ds's labelled feature rows, so the gate re-measures the champion on exactly this holdout."""
    lake.write_partition(settings.lake, "features", TRAINING_SET, ds, rows)


def read_training_set(settings: Settings, ds: dt.date) -> pd.DataFrame:
    return lake.read_partition(settings.lake, "features", TRAINING_SET, ds)


def publish(settings: Settings, ds: dt.date, frame: pd.DataFrame) -> int:
    """Replace ds's order_risk; returns rows written."""
    return staging.write(settings, TABLE, ds, frame)
