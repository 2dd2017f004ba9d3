"""Customer features at a moment ``as_of`` from contract tables, using only rows strictly before it: what the
intervention models learn from and what the segments cluster on (one definition, so a segment and a coupon
decision describe the same customer the same way).

A pure function of data frames: the pipelines read the lake, the benchmarks pass generated or public frames, and
the leakage test changes rows at or after ``as_of`` and checks nothing moves."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = (
    "tenure_days",
    "days_since_order",
    "days_since_event",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_365d",
    "avg_order_value",
    "discount_share_365d",
    "views_7d",
    "carts_7d",
    "views_30d",
    "carts_30d",
    "sessions_30d",
    "session_rate",
    "abandoned_carts_7d",
    "top_category_share",
    "category_entropy",
    "top_recommendation_score",
)
"""Model inputs, in order (NaN where a customer has no such history; LightGBM treats it as missing)."""


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86_400


def customer_features(
    customers: pd.DataFrame,
    events: pd.DataFrame,
    orders: pd.DataFrame,
    items: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    lookback_days: int = 365,
    recommendations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per customer active (an event or an order) in the ``lookback_days`` before ``as_of``, with
    :data:`FEATURES`, from rows strictly before ``as_of``. ``recommendations`` (customer_id, score of rank 1)
    must itself be computed before ``as_of``; without it the score is missing."""
    as_of = pd.Timestamp(as_of)
    start = as_of - pd.Timedelta(days=lookback_days)
    ev = events[(events["event_ts"] >= start) & (events["event_ts"] < as_of)]
    od = orders[(orders["order_ts"] >= start) & (orders["order_ts"] < as_of) & orders["customer_id"].notna()]
    known = customers[customers["signup_date"] < as_of]
    active = pd.Index(np.union1d(ev["customer_id"].unique(), od["customer_id"].unique()), name="customer_id")
    active = active[active.isin(known["customer_id"])]
    out = pd.DataFrame(index=active)
    signup = known.set_index("customer_id")["signup_date"].reindex(active)
    out["tenure_days"] = _days(as_of - signup).to_numpy()
    out["days_since_order"] = _days(as_of - od.groupby("customer_id")["order_ts"].max()).reindex(active)
    out["days_since_event"] = _days(as_of - ev.groupby("customer_id")["event_ts"].max()).reindex(active)

    for days in (30, 90, 365):
        recent = od[od["order_ts"] >= as_of - pd.Timedelta(days=days)] if days < lookback_days else od
        out[f"orders_{days}d"] = recent.groupby("customer_id").size().reindex(active, fill_value=0)
    lines = items.merge(od[["order_id", "customer_id"]], on="order_id")
    list_price = products.set_index("product_id")["price"].reindex(lines["product_id"]).to_numpy()
    paid = lines["qty"] * lines["unit_price"].fillna(pd.Series(list_price, index=lines.index))
    spend = paid.groupby(lines["customer_id"]).sum()
    discounted = (paid * (lines["discount"].fillna(0) > 0)).groupby(lines["customer_id"]).sum()
    out["spend_365d"] = spend.reindex(active, fill_value=0.0)
    out["avg_order_value"] = (spend / od.groupby("customer_id").size()).reindex(active)
    out["discount_share_365d"] = (discounted / spend.where(spend > 0)).reindex(active)

    # Sessions per day observed (since signup, within the lookback): the steadiest estimate of how active a customer is.
    observed = np.minimum(out["tenure_days"], lookback_days).clip(lower=1)
    out["session_rate"] = ev.groupby("customer_id")["session_id"].nunique().reindex(active, fill_value=0) / observed
    for days in (7, 30):
        window = ev[ev["event_ts"] >= as_of - pd.Timedelta(days=days)]
        counts = window.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
        for kind, name in (("view", "views"), ("cart", "carts")):
            column = counts[kind] if kind in counts else pd.Series(dtype=float)
            out[f"{name}_{days}d"] = column.reindex(active, fill_value=0)
        if days == 30:
            out["sessions_30d"] = window.groupby("customer_id")["session_id"].nunique().reindex(active, fill_value=0)
        else:
            bought = counts["purchase"] if "purchase" in counts else pd.Series(dtype=float)
            abandoned = out["carts_7d"] - bought.reindex(active, fill_value=0)
            out["abandoned_carts_7d"] = abandoned.clip(lower=0)

    category = products.set_index("product_id")["category"]
    per_category = ev.assign(category=category.reindex(ev["product_id"]).to_numpy()).groupby(["customer_id", "category"]).size()
    share = per_category / per_category.groupby(level="customer_id").transform("sum")
    out["top_category_share"] = share.groupby(level="customer_id").max().reindex(active)
    out["category_entropy"] = (-(share * np.log(share)).groupby(level="customer_id").sum()).reindex(active)
    top_score = None if recommendations is None or recommendations.empty else recommendations.set_index("customer_id")["score"]
    out["top_recommendation_score"] = np.nan if top_score is None else top_score.reindex(active).to_numpy()
    return out[list(FEATURES)].astype("float64").reset_index()
