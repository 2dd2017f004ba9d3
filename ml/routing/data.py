"""One depot's day in solver units: its orders promised for the delivery day (from the contract tables) with
their time windows as seconds from that day's midnight (UTC), and its fleet from the warehouses table or the
config."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.routing.model import Fleet
from ml.routing.pipeline import RoutingConfig


@dataclass(frozen=True)
class DepotDay:
    """One depot's inputs in solver units: seconds from the delivery day's midnight (UTC)."""

    depot_id: str
    depot: pd.Series  # warehouses row
    orders: pd.DataFrame
    fleet: Fleet
    service_s: int
    max_snap_m: float


def depot_day(orders: pd.DataFrame, warehouse: pd.Series, config: RoutingConfig, day: dt.date) -> DepotDay:
    midnight = pd.Timestamp(day, tz="UTC")
    start_s, end_s = int(config.shift_start_h * 3600), int(config.shift_end_h * 3600)

    def seconds(column: str, default: int) -> np.ndarray:
        values = pd.to_datetime(orders[column], utc=True) if column in orders else pd.Series(pd.NaT, index=orders.index)
        return ((values - midnight).dt.total_seconds()).fillna(default).to_numpy().astype(np.int64)

    orders = orders.assign(tw_start=np.maximum(seconds("window_start", start_s), start_s), tw_end=np.minimum(seconds("window_end", end_s), end_s))
    fleet = Fleet(
        vehicles=int(config.fleet_size or warehouse["vehicles"]),
        capacity=int(config.vehicle_capacity or warehouse["vehicle_capacity"]),
        shift_start=start_s,
        shift_end=end_s,
        max_duration=int(config.max_route_h * 3600),
        fixed_cost=round(config.van_cost_min * 60),
    )
    return DepotDay(
        depot_id=str(warehouse["warehouse_id"]),
        depot=warehouse,
        orders=orders.reset_index(drop=True),
        fleet=fleet,
        service_s=round(config.service_min * 60),
        max_snap_m=config.max_snap_m,
    )
