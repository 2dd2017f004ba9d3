"""Daily demand per product (and warehouse) from the contract's orders and order lines, as a dense panel.

Days without sales are zeros, not missing: a forecaster must see intermittent demand as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.errors import EcomError

ALL_WAREHOUSES = "ALL"  # orders without a warehouse (a POS log) are one stocking point
PROMOTION_LOOKAHEAD = 92  # days after the last known day that the promotion calendar covers


@dataclass
class Panel:
    """Demand matrix ``values[series, day]`` with the series keys and the calendar."""

    keys: pd.DataFrame  # product_id, warehouse_id per row of values
    dates: pd.DatetimeIndex  # one per column, consecutive days
    values: np.ndarray  # float64, >= 0
    discount: np.ndarray | None = None  # promotion calendar: fraction off per series and day from dates[0], past
    # and planned (it runs past the last day); None when the source has no promotions

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    def head(self, days: int) -> Panel:
        """The first ``days`` days: what is known at an origin."""
        return Panel(self.keys, self.dates[:days], self.values[:, :days], self.discount)  # promotions are planned

    def rows(self, mine: np.ndarray) -> Panel:
        """The series selected by ``mine`` (a boolean mask or positions)."""
        return Panel(self.keys.iloc[mine].reset_index(drop=True), self.dates, self.values[mine], None if self.discount is None else self.discount[mine])


def daily_demand(orders: pd.DataFrame, order_items: pd.DataFrame, start: str | None = None, end: str | None = None) -> Panel:
    """Units sold per (product, warehouse, day), zeros filled, from ``start`` (default: the first sale) through
    ``end`` (default: the last sale; a forecast made at ds must know that the days since the last sale were zeros)."""
    if orders.empty or order_items.empty:
        raise EcomError("orders/order_items: no rows; demand forecasting needs sales history")
    lines = order_items.merge(orders[["order_id", "order_ts", "warehouse_id"]], on="order_id", how="inner")
    if lines.empty:
        raise EcomError(f"order_items: none of {len(order_items)} lines match an order (e.g. {order_items['order_id'].head(3).tolist()})")
    lines = lines.assign(
        day=lines["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
        warehouse_id=lines["warehouse_id"].astype(object).where(lines["warehouse_id"].notna(), ALL_WAREHOUSES),
    )
    daily = lines.groupby(["product_id", "warehouse_id", "day"], observed=True)["qty"].sum()
    days = daily.index.get_level_values("day")
    dates = pd.date_range(pd.Timestamp(start) if start else days.min(), pd.Timestamp(end) if end else days.max(), freq="D")
    wide = daily[(days >= dates[0]) & (days <= dates[-1])].unstack("day").reindex(columns=dates, fill_value=0.0).fillna(0.0)
    keys = wide.index.to_frame(index=False).astype({"product_id": str, "warehouse_id": str})
    return Panel(keys=keys, dates=dates, values=wide.to_numpy(dtype=np.float64))


def promotion_calendar(promotions: pd.DataFrame, keys: pd.DataFrame, start: pd.Timestamp, days: int) -> np.ndarray:
    """Fraction off for each series' product on each of ``days`` days from ``start`` (the deepest promotion when
    two overlap; 0 without one), from the ``promotions`` table known at ds: past and planned."""
    calendar = np.zeros((len(keys), days), dtype=np.float32)
    series = pd.DataFrame({"product_id": keys["product_id"].astype(str).to_numpy(), "row": np.arange(len(keys))})
    pairs = promotions.assign(product_id=promotions["product_id"].astype(str)).merge(series, on="product_id")
    if pairs.empty:
        return calendar
    origin = pd.Timestamp(start).tz_localize(None).normalize()

    def day_index(column: str) -> np.ndarray:
        stamps = pd.to_datetime(pairs[column], utc=True).dt.tz_localize(None).dt.normalize()
        return (stamps - origin).dt.days.to_numpy()

    first, last = np.clip(day_index("start_date"), 0, days), np.clip(day_index("end_date") + 1, 0, days)
    length = np.maximum(last - first, 0)
    # one (series, day) entry per promoted day: the promotion's first day plus its offset
    offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    np.maximum.at(
        calendar, (np.repeat(pairs["row"].to_numpy(), length), np.repeat(first, length) + offset), np.repeat(pairs["discount"].to_numpy(np.float32), length)
    )
    return calendar


def to_long(panel: Panel) -> pd.DataFrame:
    """The panel as rows ``product_id, warehouse_id, day, qty`` (zeros included): a forecaster's input table.
    With a promotion calendar, a ``discount`` column, and rows with qty NaN for the planned days after the last."""
    n_days = len(panel.dates)
    total = n_days if panel.discount is None else panel.discount.shape[1]
    days = pd.date_range(panel.dates[0], periods=total, freq="D")
    qty = np.full((panel.n_series, total), np.nan)
    qty[:, :n_days] = panel.values
    rows = pd.DataFrame(
        {
            "product_id": np.repeat(panel.keys["product_id"].to_numpy(dtype=object), total),
            "warehouse_id": np.repeat(panel.keys["warehouse_id"].to_numpy(dtype=object), total),
            "day": np.tile(days.to_numpy(), panel.n_series),
            "qty": qty.ravel(),
        }
    )
    return rows if panel.discount is None else rows.assign(discount=panel.discount.ravel().astype(float))


def from_long(rows: pd.DataFrame) -> Panel:
    """The inverse of ``to_long``: days missing from the rows are zeros."""
    missing = {"product_id", "warehouse_id", "day", "qty"} - set(rows.columns)
    if missing:
        raise EcomError(f"demand rows lack columns {sorted(missing)}; expected product_id, warehouse_id, day, qty")
    days = pd.to_datetime(rows["day"]).dt.normalize()
    known = rows["qty"].notna().to_numpy()  # rows without qty only carry the planned promotions
    dates = pd.date_range(days[known].min(), days[known].max(), freq="D")
    keyed = rows.assign(day=days, product_id=rows["product_id"].astype(str), warehouse_id=rows["warehouse_id"].astype(str))
    wide = keyed[known].pivot_table(index=["product_id", "warehouse_id"], columns="day", values="qty", aggfunc="sum")
    wide = wide.reindex(columns=dates).fillna(0.0)
    discount = None
    if "discount" in rows.columns:
        calendar = pd.date_range(dates[0], max(days.max(), dates[-1]), freq="D")
        discount = (
            keyed[keyed["day"] >= dates[0]]
            .pivot_table(index=["product_id", "warehouse_id"], columns="day", values="discount", aggfunc="max")
            .reindex(index=wide.index, columns=calendar)
            .fillna(0.0)
            .to_numpy(dtype=np.float32)
        )
    return Panel(keys=wide.index.to_frame(index=False), dates=dates, values=wide.to_numpy(dtype=np.float64), discount=discount)
