"""Daily demand per product (and warehouse) from the contract's orders and order lines, as a dense panel.

Days without sales are zeros, not missing: a forecaster must see intermittent demand as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.errors import EcomError

ALL_WAREHOUSES = "ALL"  # orders without a warehouse (a POS log) are one stocking point


@dataclass
class Panel:
    """Demand matrix ``values[series, day]`` with the series keys and the calendar."""

    keys: pd.DataFrame  # product_id, warehouse_id per row of values
    dates: pd.DatetimeIndex  # one per column, consecutive days
    values: np.ndarray  # float64, >= 0

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    def head(self, days: int) -> Panel:
        """The first ``days`` days: what is known at an origin."""
        return Panel(self.keys, self.dates[:days], self.values[:, :days])


def daily_demand(orders: pd.DataFrame, order_items: pd.DataFrame, start: str | None = None, end: str | None = None) -> Panel:
    """Units sold per (product, warehouse, day), zeros filled, from ``start`` (default: the first sale) through
    ``end`` (default: the last sale; a forecast made at ds must know that the days since the last sale were zeros)."""
    if orders.empty or order_items.empty:
        raise EcomError("orders/order_items: no rows; demand forecasting needs sales history")
    lines = order_items.merge(orders[["order_id", "order_ts", "warehouse_id"]], on="order_id", how="inner")
    if lines.empty:
        raise EcomError(f"order_items: none of {len(order_items)} lines match an order (e.g. {order_items['order_id'].head(3).tolist()})")
    lines = lines.assign(day=lines["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
                         warehouse_id=lines["warehouse_id"].astype(object).where(lines["warehouse_id"].notna(), ALL_WAREHOUSES))
    daily = lines.groupby(["product_id", "warehouse_id", "day"], observed=True)["qty"].sum()
    days = daily.index.get_level_values("day")
    dates = pd.date_range(pd.Timestamp(start) if start else days.min(), pd.Timestamp(end) if end else days.max(), freq="D")
    wide = daily[(days >= dates[0]) & (days <= dates[-1])].unstack("day").reindex(columns=dates, fill_value=0.0).fillna(0.0)
    keys = wide.index.to_frame(index=False).astype({"product_id": str, "warehouse_id": str})
    return Panel(keys=keys, dates=dates, values=wide.to_numpy(dtype=np.float64))


def to_long(panel: Panel) -> pd.DataFrame:
    """The panel as rows ``product_id, warehouse_id, day, qty`` (zeros included): a forecaster's input table."""
    n_days = len(panel.dates)
    return pd.DataFrame({
        "product_id": np.repeat(panel.keys["product_id"].to_numpy(dtype=object), n_days),
        "warehouse_id": np.repeat(panel.keys["warehouse_id"].to_numpy(dtype=object), n_days),
        "day": np.tile(panel.dates.to_numpy(), panel.n_series),
        "qty": panel.values.ravel(),
    })


def from_long(rows: pd.DataFrame) -> Panel:
    """The inverse of ``to_long``: days missing from the rows are zeros."""
    missing = {"product_id", "warehouse_id", "day", "qty"} - set(rows.columns)
    if missing:
        raise EcomError(f"demand rows lack columns {sorted(missing)}; expected product_id, warehouse_id, day, qty")
    days = pd.to_datetime(rows["day"]).dt.normalize()
    dates = pd.date_range(days.min(), days.max(), freq="D")
    keyed = rows.assign(day=days, product_id=rows["product_id"].astype(str), warehouse_id=rows["warehouse_id"].astype(str))
    wide = keyed.pivot_table(index=["product_id", "warehouse_id"], columns="day", values="qty", aggfunc="sum")
    wide = wide.reindex(columns=dates).fillna(0.0)
    return Panel(keys=wide.index.to_frame(index=False), dates=dates, values=wide.to_numpy(dtype=np.float64))
