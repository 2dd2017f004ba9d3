"""Everything the inventory plan reads and writes: ds's ``demand_forecasts`` (the forecast pipeline's output
table, never its code), the newest product, stock and warehouse snapshots, each warehouse's staged orders, and
the publish of ``purchase_orders``."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.settings import Settings

TABLE = "purchase_orders"
FORECASTS = "demand_forecasts"
SNAPSHOTS = ("products", "inventory", "warehouses")


def load_forecasts(settings: Settings, ds: dt.date) -> pd.DataFrame:
    try:
        forecasts = lake.read_partition(settings.lake, "outputs", FORECASTS, ds)
    except EcomError as exc:
        raise EcomError(f"{FORECASTS}: no forecast for ds={ds}; run ecom_demand_forecast for that day first") from exc
    return forecasts.assign(target_date=pd.to_datetime(forecasts["target_date"]), warehouse_id=forecasts["warehouse_id"].astype(str))


def load_snapshots(settings: Settings, ds: dt.date) -> dict[str, pd.DataFrame]:
    """The newest products, inventory and warehouses snapshots at ds, by table name."""
    return {table: lake.read_latest(settings.lake, "curated", table, ds) for table in SNAPSHOTS}


def stage_orders(settings: Settings, ds: dt.date, shard: int, rows: pd.DataFrame) -> int:
    return staging.stage(settings, TABLE, ds, shard, rows)


def publish(settings: Settings, ds: dt.date, warehouses: int) -> int:
    """Gather every warehouse's staged orders and replace the ds's purchase orders; returns rows written."""
    return staging.publish(settings, TABLE, ds, warehouses)
