"""The intervention's training sets: customer features (``ml.customer_features``) at the moments a model learns
from, and the labels (a purchase in the next days, a campaign's outcome).

Everything here is a pure function of data frames: the pipeline reads the lake, the benchmarks pass generated
or public frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml import contract
from ml.customer_features import customer_features
from ml.errors import EcomError


@dataclass
class Tables:
    """The contract tables the pipeline reads; ``top_recommendations`` maps an ``as_of`` to the (customer_id,
    score) of the recommendations published the day before it (missing days: no score)."""

    customers: pd.DataFrame
    events: pd.DataFrame
    orders: pd.DataFrame
    items: pd.DataFrame
    products: pd.DataFrame
    campaigns: pd.DataFrame
    top_recommendations: Callable[[pd.Timestamp], pd.DataFrame | None] = field(default=lambda as_of: None)

    def features(self, as_of: pd.Timestamp, lookback_days: int) -> pd.DataFrame:
        return customer_features(self.customers, self.events, self.orders, self.items, self.products, as_of, lookback_days, self.top_recommendations(as_of))


def top_recommendation(recommendations: pd.DataFrame) -> pd.DataFrame:
    """(customer_id, score) of each customer's rank-1 recommendation."""
    return recommendations.loc[recommendations["rank"] == 1, ["customer_id", "score"]]


def purchase_labels(orders: pd.DataFrame, customer_ids: pd.Series, as_of: pd.Timestamp, window_days: int) -> np.ndarray:
    """1 where the customer orders in [as_of, as_of + window_days), else 0."""
    as_of = pd.Timestamp(as_of)
    inside = orders[(orders["order_ts"] >= as_of) & (orders["order_ts"] < as_of + pd.Timedelta(days=window_days))]
    return customer_ids.isin(inside["customer_id"]).to_numpy(dtype=np.int8)


def snapshot_days(last_as_of: pd.Timestamp, snapshots: int, step_days: int = 7) -> list[pd.Timestamp]:
    """``snapshots`` feature dates, ``step_days`` apart, ending at ``last_as_of`` (oldest first)."""
    return [pd.Timestamp(last_as_of) - pd.Timedelta(days=step_days * k) for k in range(snapshots - 1, -1, -1)]


def campaign_rows(campaigns: pd.DataFrame, actions: tuple[str, ...]) -> pd.DataFrame:
    """The campaign rows whose treatment is control or one of ``actions``, with ``as_of`` = the start of the day
    the coupon was sent (features must not see that day); a clear error for unknown treatments or no controls."""
    found = set(campaigns["treatment"].unique())
    unknown = found - {contract.CONTROL, *actions}
    if unknown:
        sample = campaigns.loc[campaigns["treatment"].isin(unknown), ["campaign_id", "customer_id", "treatment"]].head(3)
        raise EcomError(
            f"coupon_campaigns: treatments {sorted(unknown)} are not actions {list(actions)} or "
            f"'{contract.CONTROL}', e.g. {sample.to_dict('records')}; add them to the actions or filter them out"
        )
    if contract.CONTROL not in found:
        raise EcomError(
            f"coupon_campaigns: no '{contract.CONTROL}' rows in {campaigns['campaign_id'].nunique()} campaign(s); uplift needs a randomized control group"
        )
    return campaigns.assign(as_of=campaigns["sent_ts"].dt.floor("D"))


def propensity_set(tables: Tables, as_ofs: list[pd.Timestamp], window_days: int, lookback_days: int) -> pd.DataFrame:
    """Features at each ``as_of`` with ``label`` = a purchase in the following ``window_days``."""
    frames = []
    for as_of in as_ofs:
        feats = tables.features(as_of, lookback_days)
        frames.append(feats.assign(as_of=as_of, label=purchase_labels(tables.orders, feats["customer_id"], as_of, window_days)))
    return pd.concat(frames, ignore_index=True)


def campaign_set(tables: Tables, actions: tuple[str, ...], lookback_days: int) -> pd.DataFrame:
    """Each campaign row joined to its customer's features on the morning the coupon was sent (customers with no
    activity in the lookback are left out, exactly as they are left out of the daily plan)."""
    rows = campaign_rows(tables.campaigns, actions)
    frames = []
    for as_of, group in rows.groupby("as_of", sort=True):
        frames.append(group.merge(tables.features(as_of, lookback_days), on="customer_id", how="inner"))
    if not frames:
        raise EcomError("coupon_campaigns: no campaign rows to learn uplift from; land a campaign history first")
    return pd.concat(frames, ignore_index=True)


def split_campaigns(rows: pd.DataFrame, holdout_campaigns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Temporal split: the newest ``holdout_campaigns`` campaigns (by send time) are held out."""
    order = rows.groupby("campaign_id")["sent_ts"].min().sort_values()
    if len(order) <= holdout_campaigns:
        raise EcomError(
            f"coupon_campaigns: {len(order)} campaign(s) ({', '.join(order.index)}) cannot hold out "
            f"{holdout_campaigns} and still train; lower holdout_campaigns or land more campaigns"
        )
    held = rows["campaign_id"].isin(order.index[-holdout_campaigns:])
    return rows[~held].reset_index(drop=True), rows[held].reset_index(drop=True)


def gross_margin(products: pd.DataFrame, items: pd.DataFrame) -> float:
    """Sales-weighted gross margin rate on list price: 1 - sum(qty x unit_cost) / sum(qty x price)."""
    lines = items.merge(products[["product_id", "price", "unit_cost"]], on="product_id").dropna(subset=["price", "unit_cost"])
    if lines.empty:
        raise EcomError("products: no sold product has both price and unit_cost, so the coupon margin is unknown; set the margin explicitly")
    return float(1 - (lines["qty"] * lines["unit_cost"]).sum() / (lines["qty"] * lines["price"]).sum())


def value_per_conversion(campaigns: pd.DataFrame, discounts: dict[str, float]) -> float:
    """Mean basket at list price of a converted campaign customer (revenue is net of the coupon's discount)."""
    won = campaigns[campaigns["converted"].astype(bool) & (campaigns["revenue"] > 0)]
    if won.empty:
        raise EcomError("coupon_campaigns: no converted row with revenue; the value of a conversion is unknown")
    depth = won["treatment"].map(discounts).fillna(0.0)
    return float((won["revenue"] / (1 - depth)).mean())
