"""Pure: contract tables in, per-customer behaviour and RFM codes out; segment profiles from the labelled customers.

The behaviour is the intervention's customer features (``ml.customer_features``) plus the basket and promotion
response they lack, each transformed so that a Gaussian mixture can describe it (logs of rates, shrunk shares)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.customer_features import customer_features

CLUSTER_FEATURES = ("log_session_rate", "log_views_per_session", "category_entropy", "promo_line_share", "log_order_rate")
"""What the clustering sees: how often a customer comes, how much they look at per visit, how broad their taste
is, how much of what they buy is on promotion, and how often they order."""
PROMO_PRIOR_LINES = 5.0
"""Order lines of pseudo-evidence at the shop's promotion share: a customer with two lines is not 0% or 100% a
deal seeker."""
RFM_LEVELS = 5


def behaviour(
    customers: pd.DataFrame, events: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame, products: pd.DataFrame, as_of: pd.Timestamp, lookback_days: int
) -> pd.DataFrame:
    """One row per customer active in the ``lookback_days`` before ``as_of``: the customer features, orders per
    30 days observed, and the :data:`CLUSTER_FEATURES` (rows strictly before ``as_of``)."""
    features = customer_features(customers, events, orders, items, products, as_of, lookback_days)
    ids = features["customer_id"]
    start = as_of - pd.Timedelta(days=lookback_days)
    seen = events[(events["event_ts"] >= start) & (events["event_ts"] < as_of)]
    views = seen[seen["event_type"] == "view"].groupby("customer_id").size()
    sessions = seen.groupby("customer_id")["session_id"].nunique()
    ordered = orders[(orders["order_ts"] >= start) & (orders["order_ts"] < as_of) & orders["customer_id"].notna()]
    lines = items.merge(ordered[["order_id", "customer_id"]], on="order_id")
    line_count = lines.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy()
    promo_lines = (lines["discount"].fillna(0) > 0).groupby(lines["customer_id"]).sum().reindex(ids, fill_value=0).to_numpy()
    shop_share = promo_lines.sum() / line_count.sum() if line_count.sum() else 0.0
    order_rate = features["orders_365d"] / features["tenure_days"].clip(lower=1, upper=lookback_days) * 30
    return features.assign(
        order_rate=order_rate,
        log_session_rate=np.log(features["session_rate"].clip(lower=1e-4)),
        # a customer seen only through orders has no sessions: one product per visit is the least they looked at
        log_views_per_session=np.log((views / sessions).reindex(ids).fillna(1.0).clip(lower=1.0).to_numpy()),
        category_entropy=features["category_entropy"].fillna(0.0),
        promo_line_share=(promo_lines + PROMO_PRIOR_LINES * shop_share) / (line_count + PROMO_PRIOR_LINES),
        log_order_rate=np.log1p(order_rate),
    )


def rfm(features: pd.DataFrame) -> pd.DataFrame:
    """The classic RFM quintiles among the customers who ordered in the lookback (5 = most recent, most frequent,
    most spent; ties split by rank so every quintile is filled); customers without an order score 1-1-1."""
    out = pd.DataFrame({"customer_id": features["customer_id"], "r": 1, "f": 1, "m": 1})
    buyers = features["orders_365d"] > 0
    if buyers.sum() >= RFM_LEVELS:
        for column, source, ascending in (("r", "days_since_order", False), ("f", "orders_365d", True), ("m", "spend_365d", True)):
            ranks = features.loc[buyers, source].rank(method="first", ascending=ascending)
            out.loc[buyers, column] = pd.qcut(ranks, RFM_LEVELS, labels=False).astype(int) + 1
    out["rfm_code"] = out["r"].astype(str) + out["f"].astype(str) + out["m"].astype(str)
    return out


def lapse_risk(features: pd.DataFrame) -> pd.Series:
    """Per customer, the chance that a customer still visiting at their own session rate would have come back in
    the days since their last visit: near 1 means they are overdue, the lapsing sign a churn model learns."""
    return 1.0 - np.exp(-features["session_rate"] * features["days_since_event"].fillna(0.0))


def top_categories(events: pd.DataFrame, products: pd.DataFrame, segment_of: pd.Series, n: int = 3) -> pd.Series:
    """Per segment, its ``n`` most bought categories (purchase events), most bought first, comma separated."""
    bought = events[(events["event_type"] == "purchase") & events["customer_id"].isin(segment_of.index)]
    category = products.set_index("product_id")["category"].reindex(bought["product_id"]).to_numpy()
    counts = bought.assign(segment=segment_of.reindex(bought["customer_id"]).to_numpy(), category=category).groupby(["segment", "category"]).size()
    ranked = counts.sort_values(ascending=False, kind="stable").groupby(level="segment").head(n)
    return ranked.reset_index().groupby("segment")["category"].agg(", ".join)


def segment_stats(features: pd.DataFrame, segment_of: pd.Series) -> pd.DataFrame:
    """By segment (``features`` from :func:`behaviour`): customers, mean spend, share of the revenue, orders per
    customer per 30 days, mean lapse risk and the means of the :data:`CLUSTER_FEATURES` (what a segment is named
    and profiled from)."""
    frame = features.assign(segment=segment_of.reindex(features["customer_id"]).to_numpy(), spend=features["spend_365d"], churn_risk=lapse_risk(features))
    grouped = frame.groupby("segment")
    out = grouped[["spend", "order_rate", "churn_risk", *CLUSTER_FEATURES]].mean()
    revenue = grouped["spend"].sum()
    return out.assign(customers=grouped.size(), revenue_share=revenue / revenue.sum() if revenue.sum() > 0 else 0.0)
