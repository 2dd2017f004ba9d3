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


def daily_demand(orders: pd.DataFrame, order_items: pd.DataFrame) -> Panel:
    """Units sold per (product, warehouse, day) over the full date range, zeros filled."""
    if orders.empty or order_items.empty:
        raise EcomError("orders/order_items: no rows; demand forecasting needs sales history")
    lines = order_items.merge(orders[["order_id", "order_ts", "warehouse_id"]], on="order_id", how="inner")
    if lines.empty:
        raise EcomError(f"order_items: none of {len(order_items)} lines match an order (e.g. {order_items['order_id'].head(3).tolist()})")
    lines = lines.assign(day=lines["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
                         warehouse_id=lines["warehouse_id"].astype(object).where(lines["warehouse_id"].notna(), ALL_WAREHOUSES))
    daily = lines.groupby(["product_id", "warehouse_id", "day"], observed=True)["qty"].sum()
    dates = pd.date_range(daily.index.get_level_values("day").min(), daily.index.get_level_values("day").max(), freq="D")
    wide = daily.unstack("day").reindex(columns=dates, fill_value=0.0).fillna(0.0)
    keys = wide.index.to_frame(index=False).astype({"product_id": str, "warehouse_id": str})
    return Panel(keys=keys, dates=dates, values=wide.to_numpy(dtype=np.float64))
