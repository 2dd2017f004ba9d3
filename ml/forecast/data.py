"""Demand per product (and warehouse) and period from the contract's orders and order lines, as a dense panel.

A period is a day, or a week when the source reports weekly (every sale on the same weekday; inferred, or set in
the config): a weekly source forecast per day would look like six zero days and one spike a week. Periods without
sales are zeros, not missing: a forecaster must see intermittent demand as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.errors import EcomError

ALL_WAREHOUSES = "ALL"  # orders without a warehouse (a POS log) are one stocking point
PROMOTION_LOOKAHEAD = 92  # days after the last known day that the promotion calendar covers
MIN_WEEKLY_DAYS = 3  # distinct sale days, all on one weekday, that make a source weekly


@dataclass(frozen=True)
class Frequency:
    """The period of a demand panel: its length in days and its seasonal cycle in periods."""

    name: str
    days: int
    season: int
    unit: str  # "day" or "week", for messages

    def periods(self, days: int) -> int:
        """Periods that cover ``days`` (a horizon or a step given in days), at least one."""
        return max(1, -(-days // self.days))

    def offset(self) -> pd.Timedelta:
        return pd.Timedelta(days=self.days)


DAILY = Frequency("daily", 1, 7, "day")
WEEKLY = Frequency("weekly", 7, 52, "week")
FREQUENCIES = {f.name: f for f in (DAILY, WEEKLY)}


def frequency_of(name: str) -> Frequency:
    if name not in FREQUENCIES:
        raise EcomError(f"forecast frequency {name!r} is not one of {sorted(FREQUENCIES)}")
    return FREQUENCIES[name]


def infer_frequency(days: pd.DatetimeIndex | pd.Series) -> Frequency:
    """Weekly when the sales fall on at least MIN_WEEKLY_DAYS distinct days, all on the same weekday; else daily."""
    distinct = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(days).normalize()))
    return WEEKLY if len(distinct) >= MIN_WEEKLY_DAYS and distinct.dayofweek.nunique() == 1 else DAILY


@dataclass
class Panel:
    """Demand matrix ``values[series, period]`` with the series keys and the calendar."""

    keys: pd.DataFrame  # product_id, warehouse_id per row of values
    dates: pd.DatetimeIndex  # one per column, consecutive periods (a weekly period is labelled by its last day)
    values: np.ndarray  # float64, >= 0
    discount: np.ndarray | None = None  # promotion calendar: fraction off per series and day from dates[0], past
    # and planned (it runs past the last day); None when the source has no promotions (always None when weekly)
    frequency: Frequency = DAILY

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    def head(self, days: int) -> Panel:
        """The first ``days`` days: what is known at an origin."""
        return Panel(self.keys, self.dates[:days], self.values[:, :days], self.discount, self.frequency)  # promotions are planned

    def rows(self, mine: np.ndarray) -> Panel:
        """The series selected by ``mine`` (a boolean mask or positions)."""
        discount = None if self.discount is None else self.discount[mine]
        return Panel(self.keys.iloc[mine].reset_index(drop=True), self.dates, self.values[mine], discount, self.frequency)


def demand_panel(
    orders: pd.DataFrame, order_items: pd.DataFrame, start: str | None = None, end: str | None = None, frequency: Frequency | None = None
) -> Panel:
    """Units sold per (product, warehouse, period), zeros filled, from ``start`` (default: the first sale) through
    ``end`` (default: the last sale; a forecast made at ds must know that the days since the last sale were zeros).
    ``frequency`` defaults to the one the sale days show (``infer_frequency``). A week ends on the weekday of the
    last sale, so a weekly source keeps its own dates, and the last week is the last one complete by ``end``."""
    if orders.empty or order_items.empty:
        raise EcomError("orders/order_items: no rows; demand forecasting needs sales history")
    lines = order_items.merge(orders[["order_id", "order_ts", "warehouse_id"]], on="order_id", how="inner")
    if lines.empty:
        raise EcomError(f"order_items: none of {len(order_items)} lines match an order (e.g. {order_items['order_id'].head(3).tolist()})")
    lines = lines.assign(
        day=lines["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
        warehouse_id=lines["warehouse_id"].astype(object).where(lines["warehouse_id"].notna(), ALL_WAREHOUSES),
    )
    frequency = frequency or infer_frequency(lines["day"])
    first, last = pd.Timestamp(start) if start else lines["day"].min(), pd.Timestamp(end) if end else lines["day"].max()
    if frequency.days > 1:
        anchor = lines["day"].max().dayofweek  # the weekday every week ends on
        last -= pd.Timedelta(days=(last.dayofweek - anchor) % 7)
        if (lines["day"].dt.dayofweek != anchor).any():  # daily sales grouped into weeks: the first week must be whole
            first += pd.Timedelta(days=frequency.days - 1)
        first += pd.Timedelta(days=(anchor - first.dayofweek) % 7)
        lines = lines.assign(day=lines["day"] + pd.to_timedelta((anchor - lines["day"].dt.dayofweek) % 7, unit="D"))
    daily = lines.groupby(["product_id", "warehouse_id", "day"], observed=True)["qty"].sum()
    days = daily.index.get_level_values("day")
    dates = pd.date_range(first, last, freq=frequency.offset())
    if dates.empty:
        raise EcomError(f"orders: no complete {frequency.name} period between {first.date()} and {last.date()}")
    wide = daily[(days >= dates[0]) & (days <= dates[-1])].unstack("day").reindex(columns=dates, fill_value=0.0).fillna(0.0)
    keys = wide.index.to_frame(index=False).astype({"product_id": str, "warehouse_id": str})
    return Panel(keys=keys, dates=dates, values=wide.to_numpy(dtype=np.float64), frequency=frequency)


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
    """The panel as rows ``product_id, warehouse_id, day, qty`` (zeros included; ``day`` labels the period): a
    forecaster's input table. With a promotion calendar, a ``discount`` column, and rows with qty NaN for the
    planned days after the last."""
    n_days = len(panel.dates)
    total = n_days if panel.discount is None else panel.discount.shape[1]
    days = pd.date_range(panel.dates[0], periods=total, freq=panel.frequency.offset())
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


def from_long(rows: pd.DataFrame, frequency: Frequency = DAILY) -> Panel:
    """The inverse of ``to_long`` for a panel of ``frequency``: periods missing from the rows are zeros."""
    missing = {"product_id", "warehouse_id", "day", "qty"} - set(rows.columns)
    if missing:
        raise EcomError(f"demand rows lack columns {sorted(missing)}; expected product_id, warehouse_id, day, qty")
    days = pd.to_datetime(rows["day"]).dt.normalize()
    known = rows["qty"].notna().to_numpy()  # rows without qty only carry the planned promotions
    dates = pd.date_range(days[known].min(), days[known].max(), freq=frequency.offset())
    if len(dates) and dates[-1] != days[known].max():
        raise EcomError(f"demand rows: days {days[known].min().date()}..{days[known].max().date()} are not whole {frequency.name} periods apart")
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
    return Panel(keys=wide.index.to_frame(index=False), dates=dates, values=wide.to_numpy(dtype=np.float64), discount=discount, frequency=frequency)
