"""Order risk features and labels, pure: contract tables in, one row per order out.

Every feature of an order reads only the order itself and rows before it (strictly earlier orders; for the shared
device/address/card graph, the orders of the days before the order's day): what would have been known when the
order was placed. Labels are the chargebacks and abuse reports reported by a given moment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ml import contract

FEATURES = (
    "order_value",
    "units",
    "lines",
    "max_line_units",
    "mean_unit_price",
    "discount_share",
    "account_age_days",
    "prior_orders",
    "value_vs_history",
    "account_orders_24h",
    "home_distance_km",
    "previous_ship_distance_km",
    "new_address",
    "new_device",
    "new_card",
    "accounts_on_device",
    "accounts_at_address",
    "accounts_on_card",
    "address_orders_24h",
    "ring_accounts",
)
"""In words, for the reasons: see ``REASONS``."""

REASONS = {
    "order_value": "order value {:.0f}",
    "units": "{:.0f} units",
    "lines": "{:.0f} lines",
    "max_line_units": "{:.0f} units of one product",
    "mean_unit_price": "mean unit price {:.0f}",
    "discount_share": "{:.0%} average discount",
    "account_age_days": "account {:.0f} days old",
    "prior_orders": "{:.0f} earlier orders on the account",
    "value_vs_history": "{:.1f}x the account's usual order value",
    "account_orders_24h": "{:.0f} orders from the account in the last 24 h",
    "home_distance_km": "ships {:.1f} km from the account's home",
    "previous_ship_distance_km": "ships {:.1f} km from the account's last address",
    "new_address": "new shipping address for the account",
    "new_device": "new device for the account",
    "new_card": "new card for the account",
    "accounts_on_device": "{:.0f} other accounts used this device",
    "accounts_at_address": "{:.0f} other accounts ship to this address",
    "accounts_on_card": "{:.0f} other accounts used this card",
    "address_orders_24h": "{:.0f} orders to this address in the last 24 h",
    "ring_accounts": "{:.0f} accounts linked by shared devices, addresses or cards",
}
FLAGS = ("new_address", "new_device", "new_card")
GRAPH_DAYS = 90
"""The shared-identifier graph links the orders of this many days before an order's day."""


def order_values(items: pd.DataFrame) -> pd.DataFrame:
    """Per order: value (qty x unit price; NaN when a price is missing), units, lines, largest line, mean discount."""
    frame = items.assign(line_value=items["qty"].astype(float) * items["unit_price"].astype(float))
    return frame.groupby("order_id").agg(
        order_value=("line_value", lambda v: v.sum(min_count=len(v))),
        units=("qty", "sum"),
        lines=("qty", "size"),
        max_line_units=("qty", "max"),
        discount_share=("discount", "mean"),
    )


def _km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (haversine) in km."""
    p1, p2 = np.radians(lat1.astype(float)), np.radians(lat2.astype(float))
    dlat, dlon = p2 - p1, np.radians(lon2.astype(float) - lon1.astype(float))
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def address_key(orders: pd.DataFrame) -> pd.Series:
    """A shipping address as text (about a metre of precision); null when the order has no coordinates."""
    key = orders["ship_lat"].astype(float).round(5).astype(str) + "," + orders["ship_lon"].astype(float).round(5).astype(str)
    return key.where(orders["ship_lat"].notna() & orders["ship_lon"].notna())


def _prior_accounts(orders: pd.DataFrame, key: str) -> tuple[pd.Series, pd.Series]:
    """For each order: how many other accounts used its ``key`` (device, address, card) before it, and whether the
    order is its account's first use of it."""
    known = orders[orders[key].notna() & orders["customer_id"].notna()]
    first = known.groupby([key, "customer_id"], as_index=False)["order_ts"].min()
    # queries sort before first uses at the same moment, so a use at the order's own moment is not "before"
    timeline = pd.concat(
        [known[[key, "order_ts"]].assign(is_first=0, row=known.index), first[[key, "order_ts"]].assign(is_first=1, row=-1)], ignore_index=True
    ).sort_values([key, "order_ts", "is_first"], kind="stable")
    timeline["seen"] = timeline.groupby(key)["is_first"].cumsum()
    seen = timeline[timeline["is_first"] == 0].set_index("row")["seen"]
    own_first = known.merge(first, on=[key, "customer_id"], how="left", suffixes=("", "_first"))["order_ts_first"].to_numpy()
    new = pd.Series(own_first >= known["order_ts"].to_numpy(), index=known.index)
    others = seen.reindex(known.index) - (~new).astype(int)
    return others.reindex(orders.index), new.reindex(orders.index)


def _recent_count(orders: pd.DataFrame, key: str, hours: int) -> pd.Series:
    """Orders with the same ``key`` in the ``hours`` before each order (strictly before it: itself and orders at the
    same moment excluded). One sort on (key, time in ms), then two binary searches per order."""
    known = orders[key].notna().to_numpy()
    codes = pd.factorize(orders.loc[known, key])[0].astype(np.int64)
    ts = orders.loc[known, "order_ts"]
    ms = ((ts - ts.min()).dt.total_seconds() * 1000).round().astype(np.int64).to_numpy()
    span = int(ms.max()) + 1 if len(ms) else 1
    moment = codes * (span + hours * 3_600_000) + ms  # keys never overlap: each gets its own stretch of the line
    ordered = np.sort(moment)
    before = np.searchsorted(ordered, moment, side="left") - np.searchsorted(ordered, moment - hours * 3_600_000, side="left")
    return pd.Series(before.astype(float), index=orders.index[known]).reindex(orders.index)


def ring_accounts(orders: pd.DataFrame, days: list[pd.Timestamp], graph_days: int = GRAPH_DAYS) -> pd.Series:
    """For each order placed on one of ``days``: the most accounts in one connected component of the graph that
    links accounts to the devices, addresses and cards their orders used in the ``graph_days`` before that day,
    over the order's account, device, address and card (scipy's connected components)."""
    kinds = {"customer_id": "a", "device_id": "d", "address": "s", "payment_id": "k"}
    labelled = {col: (p + ":" + orders[col].astype(str)).where(orders[col].notna()) for col, p in kinds.items()}
    nodes, index = np.unique(pd.concat(labelled.values()).dropna().to_numpy(dtype=str), return_inverse=True)
    node_of = {col: pd.Series(-1, index=orders.index) for col in kinds}
    offset = 0
    for col, values in labelled.items():
        present = values.notna()
        n = int(present.sum())
        node_of[col].loc[present] = index[offset : offset + n]
        offset += n
    is_account = np.char.startswith(nodes.astype(str), "a:")
    day = orders["order_ts"].dt.floor("D")
    out = pd.Series(np.nan, index=orders.index)
    account_node = node_of["customer_id"].to_numpy()
    for today in days:
        window = ((day < today) & (day >= today - pd.Timedelta(days=graph_days))).to_numpy()
        edges = [(account_node[window], node_of[col].to_numpy()[window]) for col in ("device_id", "address", "payment_id")]
        src = np.concatenate([a[(a >= 0) & (b >= 0)] for a, b in edges])
        dst = np.concatenate([b[(a >= 0) & (b >= 0)] for a, b in edges])
        graph = sp.coo_matrix((np.ones(len(src)), (src, dst)), shape=(len(nodes), len(nodes)))
        _, component = connected_components(graph, directed=False)
        accounts = np.bincount(component, weights=is_account.astype(float))
        rows = (day == today).to_numpy()
        sizes = np.stack(
            [np.where(node_of[col].to_numpy()[rows] >= 0, accounts[component[np.maximum(node_of[col].to_numpy()[rows], 0)]], 0.0) for col in kinds]
        )
        out.loc[rows] = sizes.max(axis=0)
    return out


def order_features(orders: pd.DataFrame, items: pd.DataFrame, customers: pd.DataFrame, score_days: list[pd.Timestamp]) -> pd.DataFrame:
    """``FEATURES`` of the orders placed on ``score_days``, from those orders and every earlier one in ``orders``
    (pass the history the features should see: the graph looks back ``GRAPH_DAYS``)."""
    frame = orders.sort_values("order_ts", kind="stable").reset_index(drop=True)
    frame["address"] = address_key(frame)
    frame = frame.join(order_values(items), on="order_id")
    frame["mean_unit_price"] = frame["order_value"] / frame["units"]
    home = customers.set_index("customer_id")[["signup_date", "lat", "lon"]]
    frame = frame.join(home, on="customer_id")
    frame["account_age_days"] = (frame["order_ts"] - frame["signup_date"]).dt.total_seconds() / 86400.0
    by_account = frame.groupby("customer_id", sort=False)
    frame["prior_orders"] = by_account.cumcount().astype(float).where(frame["customer_id"].notna())
    prior_value = by_account["order_value"].transform(lambda v: v.shift().expanding().mean())
    frame["value_vs_history"] = frame["order_value"] / prior_value
    frame["account_orders_24h"] = _recent_count(frame, "customer_id", 24)
    frame["address_orders_24h"] = _recent_count(frame, "address", 24)
    frame["home_distance_km"] = _km(frame["ship_lat"], frame["ship_lon"], frame["lat"], frame["lon"])
    previous = by_account[["ship_lat", "ship_lon"]].shift()
    frame["previous_ship_distance_km"] = _km(frame["ship_lat"], frame["ship_lon"], previous["ship_lat"], previous["ship_lon"])
    for key, count, flag in (
        ("device_id", "accounts_on_device", "new_device"),
        ("address", "accounts_at_address", "new_address"),
        ("payment_id", "accounts_on_card", "new_card"),
    ):
        others, new = _prior_accounts(frame, key)
        frame[count], frame[flag] = others.astype(float), new.astype(float)
    scored = frame["order_ts"].dt.floor("D").isin(score_days)
    frame.loc[scored, "ring_accounts"] = ring_accounts(frame, score_days)[scored]
    return frame.loc[scored, ["order_id", "customer_id", "order_ts", *FEATURES]].astype({f: float for f in FEATURES}).reset_index(drop=True)


def labels_as_of(chargebacks: pd.DataFrame, as_of: pd.Timestamp) -> set[str]:
    """Orders known to be fraud or abuse at ``as_of``: reported before it with an abuse reason (a dispute is not)."""
    known = chargebacks[(chargebacks["reported_ts"] < as_of) & chargebacks["reason"].isin(contract.ABUSE_REASONS)]
    return set(known["order_id"])


def value_threshold(features: pd.DataFrame) -> float:
    """The rules' order value bar: the 99th percentile of the orders given (the training orders)."""
    return float(features["order_value"].quantile(0.99))


def rules_score(features: pd.DataFrame, value_threshold: float) -> np.ndarray:
    """The rules baseline: an account younger than 7 days placing an order above ``value_threshold`` (the 99th
    percentile of training orders) scores above 1, larger orders higher; every other order 0."""
    value = features["order_value"].fillna(0.0).to_numpy()
    young = (features["account_age_days"].fillna(np.inf) < 7).to_numpy() & (value > value_threshold)
    return np.where(young, 1.0 + value / (value.max() + 1.0), 0.0)
