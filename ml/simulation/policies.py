"""Who decides what the shop sees tomorrow: the platform's published outputs, or a simple stand-in for each of its
components (the passive shop's), or the truth (an oracle, to check that the simulator rewards better decisions).

A policy names one choice per component; ``platform`` takes every component from the platform, ``passive`` none, and
each ablation swaps one component of ``platform`` for its passive counterpart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.errors import ConfigError
from ml.simulation.shop import K_SHOWN, id_index
from ml.sources import synthetic
from ml.sources.synthetic import World

POPULARITY_DAYS = 28
"""The passive shop's bestseller list counts the purchases of this many days."""


@dataclass(frozen=True)
class Policy:
    """One choice per component: recommendations (platform, popularity, oracle), coupons (platform, none, random,
    oracle) and stock (platform: the MILP re-planned daily; base_stock: the shop's own (s, S))."""

    name: str
    recs: str
    coupons: str
    stock: str


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("platform", "platform", "platform", "platform"),
        Policy("passive", "popularity", "none", "base_stock"),
        Policy("no_recs", "popularity", "platform", "platform"),
        Policy("no_coupons", "platform", "none", "platform"),
        Policy("no_inventory", "platform", "platform", "base_stock"),
    )
}
"""The policies ``ecom simulate`` runs: the platform, the passive shop, and one ablation per component."""


def policy(name: str) -> Policy:
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name]


def popularity_lists(purchases: pd.DataFrame, n_customers: int, k: int = K_SHOWN) -> np.ndarray:
    """The passive shop's list: the ``k`` most bought products of the recent purchase events, for everyone."""
    counts = purchases["product_id"].value_counts()
    top = id_index(counts.index[:k].to_numpy()) if len(counts) else np.zeros(0, dtype=np.int64)
    lists = np.full((n_customers, k), -1, dtype=np.int64)
    lists[:, : len(top)] = top
    return lists


def oracle_lists(world: World, day: dt.date, k: int = K_SHOWN) -> np.ndarray:
    """Each customer's ``k`` products of highest true preference on ``day``."""
    n_c, n_p = world.cfg.n_customers, world.cfg.n_products
    pref = synthetic.preference(world, synthetic.discounts_on(world, day), np.repeat(np.arange(n_c), n_p), np.tile(np.arange(n_p), n_c)).reshape(n_c, n_p)
    return np.argsort(-pref, axis=1, kind="stable")[:, :k]


def served_lists(recommendations: pd.DataFrame, n_customers: int, k: int = K_SHOWN) -> np.ndarray:
    """The platform's ``recommendations`` rows as lists (ranks 1..k)."""
    top = recommendations[recommendations["rank"] <= k]
    lists = np.full((n_customers, k), -1, dtype=np.int64)
    lists[id_index(top["customer_id"]), top["rank"].to_numpy(np.int64) - 1] = id_index(top["product_id"])
    return lists


def served_coupons(interventions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The platform's ``interventions`` rows as (customers, actions), the control rows left out."""
    sent = interventions[interventions["action"].isin(list(synthetic.COUPON_ACTIONS))]
    return id_index(sent["customer_id"]), sent["action"].to_numpy(object)


def random_coupons(world: World, day_index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` customers alive on the day, each given an action at random."""
    rng = np.random.default_rng([world.cfg.seed, 70, day_index])
    alive = np.flatnonzero((world.signup_day <= day_index) & (world.churn_day > day_index))
    chosen = rng.choice(alive, size=min(count, len(alive)), replace=False)
    return chosen, np.asarray(list(synthetic.COUPON_ACTIONS), dtype=object)[rng.integers(0, len(synthetic.COUPON_ACTIONS), len(chosen))]


def oracle_coupons(world: World, day_index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` alive customers whose best action has the highest true uplift per unit of discount, each
    given that action (only positive uplifts)."""
    alive = np.flatnonzero((world.signup_day <= day_index) & (world.churn_day > day_index))
    actions = list(synthetic.COUPON_ACTIONS)
    value = np.column_stack([synthetic.true_uplift(world.sensitivity[alive], a) / synthetic.COUPON_ACTIONS[a] for a in actions])
    best = value.argmax(axis=1)
    gain = value[np.arange(len(alive)), best]
    order = np.argsort(-gain, kind="stable")[:count]
    order = order[gain[order] > 0]
    return alive[order], np.asarray(actions, dtype=object)[best[order]]


def replenishment(purchase_orders: pd.DataFrame, day: dt.date, world: World) -> np.ndarray:
    """The units the platform's plan orders on ``day``, per (warehouse, product)."""
    today = purchase_orders[pd.to_datetime(purchase_orders["order_date"]).dt.date == day]
    warehouses = pd.Index(world.warehouses["warehouse_id"].astype(str))
    qty = np.zeros((len(warehouses), world.cfg.n_products), dtype=np.int64)
    np.add.at(qty, (warehouses.get_indexer(today["warehouse_id"].astype(str)), id_index(today["product_id"])), today["qty"].to_numpy(np.int64))
    return qty
