"""A seeded, scalable synthetic shop with structure that models can learn and tests can check.

Latent structure (kept apart from the contract tables, for evaluation only):
- customers have tastes over categories (Dirichlet), an activity rate, a lifetime and a price sensitivity;
- product popularity follows a power law; every product has a complement in a related category;
- sessions run view -> cart -> purchase, and the next view follows the complement of the previous one with a
  fixed probability (item-to-item transitions a sequential model can pick up);
- demand has a trend, weekly and annual seasonality, holiday peaks, and promotions that lift it through a
  per-product price elasticity;
- stock follows an (s, S) policy with supplier lead times and case packs;
- a randomized coupon experiment with heterogeneous, known uplift per customer and action;
- optionally (``customer_types``), latent customer types that act only through the behaviour parameters above
  (activity, basket size, taste concentration, price sensitivity), drawn from overlapping distributions, so a
  segmentation can be scored against the truth;
- fraud and abuse (``abuse_rate`` of the orders, four patterns that drift, labelled late by chargebacks; see
  ``synthetic_abuse``), with a device and card fingerprint on every order.

Simulation is vectorised per day: the loop runs over days and session steps, never over rows.
"""

from __future__ import annotations

import bz2
import datetime as dt
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import poisson

from ml import contract
from ml.errors import ConfigError
from ml.sources import synthetic_abuse as abuse

log = logging.getLogger(__name__)

COUPON_ACTIONS = {"coupon_5": 0.05, "coupon_15": 0.15}
"""Coupon actions of the experiment and their discount."""

MONACO_BBOX = (43.725, 7.409, 43.751, 7.439)  # lat_min, lon_min, lat_max, lon_max
CART_PROB = 0.2
"""Probability that a viewed product is added to the cart (before the promotion boost)."""
BUY_PROB = 0.6
"""Probability that a carted product is bought."""
MEAN_SESSION_LENGTH = 3.0
SESSION_CAP, TYPED_SESSION_CAP = 10, 15  # most views in one session


@dataclass(frozen=True)
class ShopConfig:
    """Size and behaviour of the synthetic shop."""

    n_customers: int
    n_products: int
    n_days: int
    start: dt.date = dt.date(2024, 1, 1)
    n_categories: int = 12
    n_warehouses: int = 2
    sessions_per_customer_day: float = 0.1
    complement_prob: float = 0.35
    campaign_every_days: int = 28
    campaign_share: float = 0.25
    outcome_window_days: int = 7
    customer_types: bool = False
    abuse_rate: float = 0.0
    """Share of the orders that are fraud or abuse (the platform lands its shop with ECOM_ABUSE_RATE, 1%)."""
    seed: int = 42

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.n_days - 1)


SCALES: dict[str, ShopConfig] = {
    "tiny": ShopConfig(n_customers=300, n_products=60, n_days=90, n_categories=6),
    "demo": ShopConfig(n_customers=5_000, n_products=400, n_days=420),
    "large": ShopConfig(n_customers=100_000, n_products=20_000, n_days=730, n_categories=40, n_warehouses=3, sessions_per_customer_day=0.03),
}


@dataclass(frozen=True)
class CustomerType:
    """A latent customer type: the distributions its customers' behaviour parameters are drawn from."""

    name: str
    share: float
    activity_log_mean: float  # log of the multiple of sessions_per_customer_day; the spread is ACTIVITY_LOG_SD
    basket: float  # mean products viewed per session
    taste_alpha: float  # Dirichlet concentration over categories: small = a few favourite categories
    sensitivity: tuple[float, float]  # Beta(a, b) price sensitivity


CUSTOMER_TYPES = (
    CustomerType("loyal", 0.2, 1.2, 4.0, 0.1, (1.5, 8.0)),
    CustomerType("deal_seeker", 0.25, 0.0, 2.5, 0.3, (8.0, 1.5)),
    CustomerType("explorer", 0.2, 0.3, 7.0, 3.0, (3.0, 3.0)),
    CustomerType("occasional", 0.35, -1.5, 1.5, 0.3, (3.0, 3.0)),
)
"""The types of a shop built with ``customer_types``. Every parameter's distributions overlap between types
(``benchmarks/segments_synthetic.py`` reports by how much)."""
ACTIVITY_LOG_SD = 0.4
BASKET_SD = 0.2  # log-normal spread of a customer's basket around their type's


def scale_config(scale: str, seed: int | None = None) -> ShopConfig:
    """The configuration of a named scale (tiny, demo, large), optionally reseeded."""
    if scale not in SCALES:
        raise ConfigError(f"unknown synthetic scale {scale!r}; choose one of {sorted(SCALES)}")
    cfg = SCALES[scale]
    return cfg if seed is None else replace(cfg, seed=seed)


@dataclass
class World:
    """Everything about the shop that does not change day to day, plus its hidden (latent) state."""

    cfg: ShopConfig
    customers: pd.DataFrame
    products: pd.DataFrame
    warehouses: pd.DataFrame
    promotions: pd.DataFrame
    taste_cdf: np.ndarray  # (customers, categories) cumulative taste
    activity: np.ndarray  # expected sessions per day
    signup_day: np.ndarray  # day index (may be negative: before the simulated period)
    churn_day: np.ndarray  # day index after which the customer no longer visits
    sensitivity: np.ndarray  # price sensitivity in [0, 1]: drives coupon uplift
    popularity: np.ndarray  # power-law weight of each product
    elasticity: np.ndarray
    complement: np.ndarray  # product index -> complement product index
    category_of: np.ndarray
    nearest_warehouse: np.ndarray  # customer index -> warehouse index
    customer_type: np.ndarray | None = None  # index into CUSTOMER_TYPES, when the shop has types
    basket: np.ndarray | None = None  # mean products viewed per session, when the shop has types
    address_pool: np.ndarray | None = None  # (lat, lon) of the addresses abusive orders are shipped to

    def type_truth(self) -> pd.DataFrame:
        """Each customer's latent type and the behaviour parameters drawn from it (empty for an untyped shop)."""
        if self.customer_type is None or self.basket is None:
            return pd.DataFrame()
        taste = np.diff(self.taste_cdf, axis=1, prepend=0.0)
        return pd.DataFrame(
            {
                "customer_id": self.customers["customer_id"],
                "customer_type": np.asarray([t.name for t in CUSTOMER_TYPES])[self.customer_type],
                "activity": self.activity,
                "basket": self.basket,
                "taste_entropy": -(taste * np.log(np.clip(taste, 1e-12, None))).sum(axis=1),
                "sensitivity": self.sensitivity,
            }
        )


def road_node_coordinates(osm_file: Path) -> np.ndarray:
    """(lat, lon) of every node in an OSM XML file (``.osm`` or ``.osm.bz2``), for placing addresses on roads."""
    opener = bz2.open if str(osm_file).endswith(".bz2") else open
    coords = []
    with opener(osm_file, "rb") as fh:
        for _, elem in ET.iterparse(fh, events=("end",)):
            if elem.tag == "node":
                coords.append((float(elem.get("lat")), float(elem.get("lon"))))
            elem.clear()
    if not coords:
        raise ConfigError(f"OSM file {osm_file} has no nodes to place addresses on")
    return np.asarray(coords)


def _addresses(rng: np.random.Generator, n: int, road_nodes: np.ndarray | None) -> np.ndarray:
    if road_nodes is None:
        lat0, lon0, lat1, lon1 = MONACO_BBOX
        log.warning("no road network given: placing %d addresses uniformly in the Monaco bounding box", n)
        return np.column_stack([rng.uniform(lat0, lat1, n), rng.uniform(lon0, lon1, n)])
    return road_nodes[rng.integers(0, len(road_nodes), n)]


def build_world(cfg: ShopConfig, road_nodes: np.ndarray | None = None) -> World:
    """Draw the static shop: catalogue, customers with latent traits, depots and the promotion calendar."""
    rng = np.random.default_rng([cfg.seed, 0])
    k, n_p, n_c = cfg.n_categories, cfg.n_products, cfg.n_customers

    # Catalogue: categories of uneven size, products sorted by category so each category is a contiguous block.
    category_of = np.sort(rng.choice(k, size=n_p, p=rng.dirichlet(np.full(k, 3.0))))
    popularity = (1.0 + rng.permutation(n_p)) ** -1.1
    cat_price = rng.lognormal(3.0, 0.6, k)
    price = np.round(cat_price[category_of] * rng.lognormal(0, 0.35, n_p), 2).clip(0.5)
    n_suppliers = max(1, n_p // 25)
    supplier = rng.integers(0, n_suppliers, n_p)
    supplier_lead = rng.integers(2, 15, n_suppliers)
    case_pack = rng.choice([1, 4, 6, 12, 24], size=n_p, p=[0.3, 0.2, 0.2, 0.2, 0.1])
    products = pd.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(n_p)],
            "category": [f"cat_{c:02d}" for c in category_of],
            "brand": [f"brand_{c:02d}_{b}" for c, b in zip(category_of, rng.integers(0, 6, n_p), strict=False)],
            "title": [f"item {i} of cat_{c:02d}" for i, c in enumerate(category_of)],
            "price": price,
            "unit_cost": np.round(price * rng.uniform(0.45, 0.7, n_p), 2),
            "case_pack": case_pack,
            "moq": case_pack * rng.choice([0, 1, 2, 5], size=n_p),
            "lead_time_days": supplier_lead[supplier],
            "supplier_id": [f"S{s:03d}" for s in supplier],
        }
    )
    # Complements live in the "next" category and are drawn by popularity, so transitions concentrate.
    complement = np.empty(n_p, dtype=np.int64)
    for c in range(k):
        members = np.flatnonzero(category_of == c)
        target = np.flatnonzero(category_of == (c + 1) % k)
        if len(members) == 0:
            continue
        if len(target) == 0:  # tiny catalogues can leave a category empty
            target = np.arange(n_p)
        w = popularity[target] / popularity[target].sum()
        complement[members] = rng.choice(target, size=len(members), p=w)

    # Customers: tastes, activity, lifetime, price sensitivity (higher for rare visitors).
    taste = rng.dirichlet(np.full(k, 0.3), size=n_c)
    activity = cfg.sessions_per_customer_day * rng.lognormal(-0.5, 1.0, n_c)
    signup_day = np.where(rng.random(n_c) < 0.6, -rng.integers(0, 730, n_c), rng.integers(0, cfg.n_days, n_c))
    churn_day = signup_day + rng.exponential(cfg.n_days * 3.0, n_c).astype(np.int64) + 30
    z = -1.2 * np.log(activity / cfg.sessions_per_customer_day) + rng.normal(0, 0.7, n_c)
    sensitivity = 1.0 / (1.0 + np.exp(-z))
    customer_type = basket = None
    if cfg.customer_types:
        customer_type, taste, activity, basket, sensitivity = _typed_traits(np.random.default_rng([cfg.seed, 8]), cfg)

    # Depots are spread across the address space: the extreme and middle points by longitude.
    depots = _addresses(rng, cfg.n_warehouses * 50, road_nodes)
    depots = depots[np.argsort(depots[:, 1])][np.linspace(0, len(depots) - 1, cfg.n_warehouses).astype(int)]
    warehouses = pd.DataFrame(
        {
            "warehouse_id": [f"W{i}" for i in range(cfg.n_warehouses)],
            "lat": depots[:, 0],
            "lon": depots[:, 1],
            "capacity_units": rng.integers(20, 40, cfg.n_warehouses) * 1_000 * max(1, n_p // 400),
            "vehicles": rng.integers(3, 7, cfg.n_warehouses),
            "vehicle_capacity": rng.choice([60, 80, 100], cfg.n_warehouses),
        }
    )
    home = _addresses(rng, n_c, road_nodes)
    pool = road_nodes if road_nodes is not None else _addresses(np.random.default_rng([cfg.seed, 12]), 2_000, None)
    d2 = (home[:, None, 0] - depots[None, :, 0]) ** 2 + (home[:, None, 1] - depots[None, :, 1]) ** 2
    nearest = d2.argmin(axis=1)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n_c)],
            "signup_date": pd.Timestamp(cfg.start, tz="UTC") + pd.to_timedelta(signup_day, unit="D"),
            "region": [f"region_{w}" for w in nearest],
            "lat": home[:, 0],
            "lon": home[:, 1],
        }
    )
    return World(
        cfg=cfg,
        customers=customers,
        products=products,
        warehouses=warehouses,
        promotions=_promotions(rng, cfg),
        taste_cdf=np.cumsum(taste, axis=1),
        activity=activity,
        signup_day=signup_day,
        churn_day=churn_day,
        sensitivity=sensitivity,
        popularity=popularity,
        elasticity=rng.uniform(1.0, 3.0, n_p),
        complement=complement,
        category_of=category_of,
        nearest_warehouse=nearest,
        customer_type=customer_type,
        basket=basket,
        address_pool=pool,
    )


def _typed_traits(rng: np.random.Generator, cfg: ShopConfig) -> tuple[np.ndarray, ...]:
    """Type, taste, activity, basket and sensitivity of each customer of a typed shop (its own random stream, so
    the rest of the shop is drawn as without types)."""
    n_c, k = cfg.n_customers, cfg.n_categories
    kind = rng.choice(len(CUSTOMER_TYPES), size=n_c, p=[t.share for t in CUSTOMER_TYPES])
    taste = np.empty((n_c, k))
    activity, basket, sensitivity = np.empty(n_c), np.empty(n_c), np.empty(n_c)
    for index, spec in enumerate(CUSTOMER_TYPES):
        members = np.flatnonzero(kind == index)
        taste[members] = rng.dirichlet(np.full(k, spec.taste_alpha), size=len(members))
        activity[members] = cfg.sessions_per_customer_day * np.exp(rng.normal(spec.activity_log_mean, ACTIVITY_LOG_SD, len(members)))
        basket[members] = np.maximum(spec.basket * np.exp(rng.normal(0.0, BASKET_SD, len(members))), 1.0)
        sensitivity[members] = rng.beta(*spec.sensitivity, size=len(members))
    return kind, taste, activity, basket, sensitivity


def _promotions(rng: np.random.Generator, cfg: ShopConfig) -> pd.DataFrame:
    """About one promotion per product per 90 days, 3-10 days long, 10-30% off; planned 28 days ahead."""
    total_days = cfg.n_days + 28
    n = rng.poisson(cfg.n_products * total_days / 90)
    product = rng.integers(0, cfg.n_products, n)
    start = rng.integers(0, total_days, n)
    frame = pd.DataFrame({"product": product, "start": start, "length": rng.integers(3, 11, n), "discount": rng.choice([0.1, 0.2, 0.3], n)}).sort_values(
        ["product", "start"]
    )
    # One promotion at a time per product: drop those that start before the previous one ended.
    prev_end = frame.groupby("product")["start"].shift() + frame.groupby("product")["length"].shift()
    frame = frame[~(frame["start"] < prev_end)].drop_duplicates(["product", "start"])
    origin = pd.Timestamp(cfg.start, tz="UTC")
    return pd.DataFrame(
        {
            "product_id": [f"P{p:05d}" for p in frame["product"]],
            "start_date": origin + pd.to_timedelta(frame["start"], unit="D"),
            "end_date": origin + pd.to_timedelta(frame["start"] + frame["length"] - 1, unit="D"),
            "discount": frame["discount"].to_numpy(),
        }
    ).reset_index(drop=True)


def day_multiplier(day: dt.date, day_index: int) -> float:
    """Demand level of a day: trend x weekly x annual seasonality x holiday peaks."""
    trend = 1.0 + 0.25 * day_index / 365.0
    weekly = (0.9, 0.92, 0.95, 1.0, 1.1, 1.3, 1.2)[day.weekday()]
    annual = 1.0 + 0.15 * np.sin(2 * np.pi * (day.timetuple().tm_yday - 80) / 365.25)
    return trend * weekly * annual * holiday_multiplier(day)


def holiday_multiplier(day: dt.date) -> float:
    """Black Friday to Cyber Monday, the Christmas run-up, the January sales; quiet on Christmas Day."""
    thanksgiving = max(d for d in (dt.date(day.year, 11, x) for x in range(22, 29)) if d.weekday() == 3)
    if thanksgiving + dt.timedelta(days=1) <= day <= thanksgiving + dt.timedelta(days=4):
        return 2.0
    if dt.date(day.year, 12, 10) <= day <= dt.date(day.year, 12, 22):
        return 1.4
    if day == dt.date(day.year, 12, 25):
        return 0.3
    if dt.date(day.year, 1, 2) <= day <= dt.date(day.year, 1, 8):
        return 1.25
    return 1.0


def discounts_on(world: World, day: dt.date) -> np.ndarray:
    promos = world.promotions
    ts = pd.Timestamp(day, tz="UTC")
    active = promos[(promos["start_date"] <= ts) & (promos["end_date"] >= ts)]
    disc = np.zeros(world.cfg.n_products)
    disc[active["product_id"].str[1:].astype(int).to_numpy()] = active["discount"].to_numpy()
    return disc


def preference(world: World, discount: np.ndarray, customers: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Each customer's true preference for a product: the share of their views that land on it, element-wise over
    the paired index arrays. A view is taste-driven (their taste for the category times the product's share of the
    category's weight, promotions included) or, with ``complement_prob``, the complement of the view before; the
    share counts both paths over the customer's session lengths, as ``simulate_day`` draws them."""
    weight = world.popularity * (1.0 - discount) ** (-world.elasticity)
    category_total = np.bincount(world.category_of, weights=weight, minlength=world.cfg.n_categories)
    taste = np.diff(world.taste_cdf, axis=1, prepend=0.0)
    unique, inverse = np.unique(customers, return_inverse=True)
    moved = taste[unique][:, world.category_of] * (weight / category_total[world.category_of])[None, :]
    n_p = world.cfg.n_products
    to_complement = sp.csr_matrix((np.ones(n_p), (np.arange(n_p), world.complement)), shape=(n_p, n_p))
    steps = views_by_complement_steps(world)[unique]
    share = steps[:, [0]] * moved
    for k in range(1, steps.shape[1]):
        moved = np.asarray(to_complement.T @ moved.T).T  # the mass of view k-1 on product i moves to its complement
        share += steps[:, [k]] * moved
    return share[inverse, products]


def views_by_complement_steps(world: World) -> np.ndarray:
    """(customers, steps): the share of a customer's views that come k complement steps after a taste-driven view.

    Sessions last 1 + Poisson(mean - 1) views up to a cap; view t > 0 follows the complement of view t - 1 with
    ``complement_prob``, else is drawn by taste. So view t is k < t steps away with (1 - a) a^k, t steps with a^t."""
    a, cap = world.cfg.complement_prob, SESSION_CAP if world.basket is None else TYPED_SESSION_CAP
    mean_length = np.full(world.cfg.n_customers, MEAN_SESSION_LENGTH) if world.basket is None else world.basket
    lengths = np.arange(1, cap + 1)
    chance = poisson.pmf(lengths[None, :] - 1, mean_length[:, None] - 1)
    chance[:, -1] += 1.0 - chance.sum(axis=1)  # sessions drawn longer are cut at the cap
    t, k = np.arange(cap)[:, None], np.arange(cap)[None, :]
    at_view = np.where(k < t, (1 - a) * a**k, np.where(k == t, a**t, 0.0))  # (view t, steps k)
    by_length = np.cumsum(at_view, axis=0)  # row L - 1: expected views at each distance in a session of L views
    return (chance @ by_length) / (chance @ lengths)[:, None]


def expected_daily_demand(world: World) -> np.ndarray:
    """Rough expected units per product per day at the base level, used to size the stock policy."""
    k = world.cfg.n_categories
    taste = np.diff(np.concatenate([np.zeros((len(world.taste_cdf), 1)), world.taste_cdf], axis=1), axis=1)
    cat_share = (taste * world.activity[:, None]).sum(axis=0)
    within = world.popularity / np.bincount(world.category_of, weights=world.popularity, minlength=k)[world.category_of]
    return cat_share[world.category_of] * within * MEAN_SESSION_LENGTH * CART_PROB * BUY_PROB * 1.3


@dataclass
class Batch:
    """What the generator produces for a range of days: contract tables plus hidden ground truth."""

    tables: dict[str, pd.DataFrame]
    ground_truth: dict[str, pd.DataFrame]
    stock: Stock
    """The stock at the end of the last day, with what is on its way (where a closed-loop shop continues)."""


OPENING_SAFETY = 1.3
"""The open-loop shop's (s, S) margin over the lead-time demand (its history is generated with it)."""


@dataclass
class Stock:
    """Units on hand per (warehouse, product) and the arrivals on their way, with the shop's own (s, S) policy:
    below the reorder point, order up to the order-up-to level in whole case packs, delivered after the supplier's
    lead time. ``reorder_point`` and ``order_up_to`` are sized from the expected demand (``levels``)."""

    on_hand: np.ndarray  # (warehouses, products) units
    arrivals: np.ndarray  # (horizon, warehouses, products): units arriving on day index i at [i % horizon]
    reorder_point: np.ndarray
    order_up_to: np.ndarray
    lead: np.ndarray  # supplier lead time per product, days
    pack: np.ndarray  # case pack per product

    @staticmethod
    def levels(world: World, safety: float = OPENING_SAFETY) -> tuple[np.ndarray, np.ndarray]:
        """The (s, S) policy's reorder point and order-up-to level per (warehouse, product): the expected demand over
        the lead time plus three days, times ``safety``, and two more weeks of demand above it."""
        n_w = world.cfg.n_warehouses
        wh_share = np.bincount(world.nearest_warehouse, weights=world.activity, minlength=n_w) / world.activity.sum()
        mean_demand = np.maximum(wh_share[:, None] * expected_daily_demand(world)[None, :], 0.05)
        reorder_point = np.ceil(mean_demand * (world.products["lead_time_days"].to_numpy() + 3) * safety)
        return reorder_point, reorder_point + np.ceil(mean_demand * 14)

    def resize(self, world: World, safety: float) -> None:
        """Re-size the (s, S) levels with another margin (the stock on hand and on order stay)."""
        self.reorder_point, self.order_up_to = self.levels(world, safety)

    @classmethod
    def opening(cls, world: World) -> Stock:
        """The stock the shop opens with: every product at its order-up-to level, nothing on order."""
        n_w = world.cfg.n_warehouses
        lead = world.products["lead_time_days"].to_numpy()
        pack = world.products["case_pack"].to_numpy()
        reorder_point, order_up_to = cls.levels(world)
        horizon = int(lead.max()) + 2
        on_hand = order_up_to.astype(np.int64)
        return cls(on_hand, np.zeros((horizon, n_w, len(lead)), dtype=np.int64), reorder_point, order_up_to, lead, pack)

    def receive(self, i: int) -> None:
        """Put day ``i``'s arrivals on the shelf."""
        slot = i % len(self.arrivals)
        self.on_hand += self.arrivals[slot]
        self.arrivals[slot] = 0

    def on_order(self) -> np.ndarray:
        return self.arrivals.sum(axis=0)

    def base_stock_orders(self) -> np.ndarray:
        """The (s, S) policy's orders for today, in units per (warehouse, product)."""
        position = self.on_hand + self.on_order()
        need = position < self.reorder_point
        return np.where(need, np.ceil((self.order_up_to - position) / self.pack) * self.pack, 0).astype(np.int64)

    def order(self, i: int, qty: np.ndarray) -> None:
        """Order ``qty`` units per (warehouse, product) on day ``i``; each arrives after its product's lead time."""
        horizon = len(self.arrivals)
        for w in range(qty.shape[0]):
            ordered = np.flatnonzero(qty[w])
            np.add.at(self.arrivals, ((i + self.lead[ordered]) % horizon, w, ordered), qty[w, ordered])  # type: ignore[arg-type]  # numpy's stub refuses a tuple index np.add.at takes


def simulate(
    world: World,
    start: dt.date,
    end: dt.date,
    progress: Callable[[int, int], None] | None = None,
) -> Batch:
    """Simulate from the shop's first day to ``end`` and return the facts dated in [start, end].

    Stock is a running state, so days before ``start`` are simulated too (and dropped); each day's events use
    their own random stream, so the same day always gets the same rows whatever range is asked for.
    """
    cfg = world.cfg
    if not (cfg.start <= start <= end):
        raise ConfigError(f"days {start}..{end} start before the synthetic shop opened on {cfg.start}")
    t0 = time.perf_counter()
    stock = Stock.opening(world)
    frames: dict[str, list[pd.DataFrame]] = {t: [] for t in ("events", "orders", "order_items", "inventory", "chargebacks", "abuse", "accounts")}
    n_days = (end - cfg.start).days + 1
    for i in range(n_days):
        day = cfg.start + dt.timedelta(days=i)
        stock.receive(i)
        keep = day >= start
        if keep:
            frames["inventory"].append(inventory_frame(world, day, stock.on_hand, stock.on_order()))
        rows = simulate_day(world, i, day, keep)
        units = rows.units
        if cfg.abuse_rate > 0:
            units = units + _add_abuse(world, i, day, rows, frames, keep)
        if keep:
            frames["events"].append(rows.events)
            frames["orders"].append(rows.orders)
            frames["order_items"].append(rows.items)
        stock.on_hand = np.maximum(stock.on_hand - units, 0)
        stock.order(i, stock.base_stock_orders())
        if progress:
            progress(i + 1, n_days)

    end_ts = pd.Timestamp(end, tz="UTC")
    start_ts = pd.Timestamp(start, tz="UTC")
    abusive, accounts = frames.pop("abuse"), frames.pop("accounts")
    tables = {name: _concat(name, parts) for name, parts in frames.items()}
    reported = tables["chargebacks"]["reported_ts"]
    tables["chargebacks"] = tables["chargebacks"][(reported >= start_ts) & (reported < end_ts + pd.Timedelta(days=1))].reset_index(drop=True)
    campaigns, truth = coupon_experiment(world, start, end)
    tables["coupon_campaigns"] = campaigns
    customers = pd.concat([world.customers, *accounts], ignore_index=True) if accounts else world.customers
    tables["customers"] = contract.conform("customers", customers[customers["signup_date"] <= end_ts])
    tables["products"] = contract.conform("products", world.products)
    tables["warehouses"] = contract.conform("warehouses", world.warehouses)
    horizon_ts = end_ts + pd.Timedelta(days=28)
    tables["promotions"] = contract.conform("promotions", world.promotions[world.promotions["start_date"] <= horizon_ts])
    elapsed = time.perf_counter() - t0
    log.info(
        "simulated %d days (%s..%s kept): %d events, %d orders in %.1fs (%.0f events/s)",
        n_days,
        start,
        end,
        len(tables["events"]),
        len(tables["orders"]),
        elapsed,
        len(tables["events"]) / max(elapsed, 1e-9),
    )
    types = world.type_truth()
    ground_truth = {"coupon_uplift": truth} | ({"customer_types": types} if len(types) else {})
    if cfg.abuse_rate > 0:
        ground_truth["abuse"] = pd.concat(abusive, ignore_index=True) if abusive else pd.DataFrame(columns=["order_id", "kind", "variant"])
    return Batch(tables=tables, ground_truth=ground_truth, stock=stock)


def _add_abuse(world: World, i: int, day: dt.date, rows: DayRows, frames: dict[str, list[pd.DataFrame]], keep: bool) -> np.ndarray:
    """Add a day's abusive accounts, orders, lines, events and (future) labels to ``frames``; returns the units
    they take from stock. Accounts and labels are kept for every day: a label reaches days after its order."""
    assert world.address_pool is not None
    day_abuse = abuse.abuse_day(world, i, day, len(rows.ordering_sessions), rows.sessions, world.address_pool)
    frames["accounts"].append(_account_rows(world, day_abuse.accounts))
    frames["chargebacks"].append(abuse.false_labels(world, i, order_ids(i, rows.ordering_sessions), pd.Timestamp(day, tz="UTC")))
    units = np.zeros((world.cfg.n_warehouses, world.cfg.n_products), dtype=np.int64)
    if not len(day_abuse.orders):
        return units
    frames["chargebacks"].append(day_abuse.labels)
    items = day_abuse.items.merge(day_abuse.orders[["order_id", "warehouse_id", "session", "order_ts"]], on="order_id")
    warehouse = world.warehouses["warehouse_id"].tolist()
    np.add.at(units, (items["warehouse_id"].map(warehouse.index).to_numpy(), items["product"].to_numpy()), items["qty"].to_numpy().astype(np.int64))
    if keep:
        orders = day_abuse.orders.assign(customer_id=lambda o: _customer_ids(o["customer_index"].to_numpy()), window_start=pd.NaT, window_end=pd.NaT)
        frames["orders"].append(contract.conform("orders", orders))
        prices = world.products["price"].to_numpy()[items["product"].to_numpy()]
        product_ids = world.products["product_id"].to_numpy()[items["product"].to_numpy()]
        frames["order_items"].append(
            contract.conform(
                "order_items",
                pd.DataFrame(
                    {
                        "order_id": items["order_id"],
                        "product_id": product_ids,
                        "qty": items["qty"],
                        "unit_price": np.round(prices * (1 - items["discount"].to_numpy()), 2),
                        "discount": items["discount"],
                    }
                ),
            )
        )
        frames["events"].append(_abuse_events(i, items, orders, product_ids))
        frames["abuse"].append(day_abuse.truth)
    return units


def _customer_ids(index: np.ndarray) -> np.ndarray:
    return np.asarray([f"C{i:06d}" for i in index], dtype=object)


def order_ids(i: int, sessions: np.ndarray) -> np.ndarray:
    return np.asarray([f"O{i:04d}{s:06d}" for s in sessions], dtype=object)


def _account_rows(world: World, accounts: pd.DataFrame) -> pd.DataFrame:
    """New abusive accounts as customer rows (their region is their home's nearest depot, like anyone's)."""
    depots = world.warehouses[["lat", "lon"]].to_numpy()
    home = accounts[["lat", "lon"]].to_numpy()
    nearest = ((home[:, None, :] - depots[None, :, :]) ** 2).sum(axis=2).argmin(axis=1) if len(home) else np.zeros(0, dtype=int)
    return pd.DataFrame(
        {
            "customer_id": _customer_ids(accounts["customer_index"].to_numpy()),
            "signup_date": pd.Timestamp(world.cfg.start, tz="UTC") + pd.to_timedelta(accounts["signup_day"].to_numpy(), unit="D"),
            "region": [f"region_{w}" for w in nearest],
            "lat": accounts["lat"].to_numpy(),
            "lon": accounts["lon"].to_numpy(),
        }
    )


def _abuse_events(i: int, items: pd.DataFrame, orders: pd.DataFrame, product_ids: np.ndarray) -> pd.DataFrame:
    """A view, a cart and a purchase per abusive line, 30 s apart per line, ending at the order (as for anyone)."""
    position = items.groupby("order_id").cumcount(ascending=False).to_numpy()
    view_ts = items["order_ts"] - pd.to_timedelta(4.0 + 30.0 * position, unit="s")
    customer = orders.set_index("order_id")["customer_id"].reindex(items["order_id"]).to_numpy()
    session = session_ids(i, items["session"].to_numpy())
    parts = [
        pd.DataFrame(
            {"customer_id": customer, "product_id": product_ids, "event_ts": view_ts + pd.Timedelta(seconds=lag), "event_type": kind, "session_id": session}
        )
        for lag, kind in ((0, "view"), (2, "cart"), (4, "purchase"))
    ]
    return contract.conform("events", pd.concat(parts, ignore_index=True).drop_duplicates(["customer_id", "product_id", "event_ts", "event_type"]))


def _concat(name: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    return contract.conform(name, pd.concat(parts, ignore_index=True)) if parts else contract.empty(name)


def inventory_frame(world: World, day: dt.date, on_hand: np.ndarray, on_order: np.ndarray) -> pd.DataFrame:
    n_w, n_p = on_hand.shape
    return pd.DataFrame(
        {
            "ds": pd.Timestamp(day, tz="UTC"),
            "warehouse_id": np.repeat(world.warehouses["warehouse_id"].to_numpy(), n_p),
            "product_id": np.tile(world.products["product_id"].to_numpy(), n_w),
            "on_hand": on_hand.ravel(),
            "on_order": on_order.ravel(),
        }
    )


class DayRows(NamedTuple):
    """One day of legitimate sessions."""

    events: pd.DataFrame
    orders: pd.DataFrame
    items: pd.DataFrame
    units: np.ndarray  # sold per (warehouse, product)
    sessions: int
    ordering_sessions: np.ndarray  # the sessions that placed an order (one order each)
    session_customers: np.ndarray  # customer index of each session


def simulate_day(world: World, i: int, day: dt.date, materialize: bool) -> DayRows:
    """One day of sessions (events, orders and lines only when ``materialize``; the counts always)."""
    cfg = world.cfg
    rng = np.random.default_rng([cfg.seed, 1, i])
    alive = np.flatnonzero((world.signup_day <= i) & (world.churn_day > i))
    rate = world.activity[alive] * day_multiplier(day, i)
    n_sessions = rng.poisson(rate.sum()) if len(alive) else 0
    units = np.zeros((cfg.n_warehouses, cfg.n_products), dtype=np.int64)
    if n_sessions == 0:
        none = np.zeros(0, dtype=np.int64)
        return DayRows(contract.empty("events"), contract.empty("orders"), contract.empty("order_items"), units, 0, none, none)
    cust = alive[rng.choice(len(alive), size=n_sessions, p=rate / rate.sum())]
    mean_length = MEAN_SESSION_LENGTH if world.basket is None else world.basket[cust]
    length = np.minimum(1 + rng.poisson(mean_length - 1, n_sessions), SESSION_CAP if world.basket is None else TYPED_SESSION_CAP)

    discount = discounts_on(world, day)
    weight = world.popularity * (1.0 - discount) ** (-world.elasticity)
    cum = np.cumsum(weight)
    cat_hi = np.searchsorted(world.category_of, np.arange(cfg.n_categories), side="right")
    cat_lo = np.concatenate([[0], cat_hi[:-1]])
    cum_lo = np.where(cat_lo > 0, cum[np.maximum(cat_lo - 1, 0)], 0.0)
    cum_hi = np.where(cat_hi > 0, cum[np.maximum(cat_hi - 1, 0)], 0.0)

    def draw_by_taste(sessions: np.ndarray) -> np.ndarray:
        u = rng.random(len(sessions))
        cat = (world.taste_cdf[cust[sessions]] < u[:, None]).sum(axis=1).clip(0, cfg.n_categories - 1)
        empty = cum_hi[cat] <= cum_lo[cat]
        cat = np.where(empty, world.category_of[rng.integers(0, cfg.n_products, len(sessions))], cat)
        target = cum_lo[cat] + rng.random(len(sessions)) * (cum_hi[cat] - cum_lo[cat])
        return np.searchsorted(cum, target, side="right").clip(0, cfg.n_products - 1)

    steps_session, steps_product = [], []
    prev = draw_by_taste(np.arange(n_sessions))
    steps_session.append(np.arange(n_sessions))
    steps_product.append(prev)
    for step in range(1, int(length.max())):
        live = np.flatnonzero(length > step)
        follow = rng.random(len(live)) < cfg.complement_prob
        nxt = np.where(follow, world.complement[prev[live]], draw_by_taste(live))
        prev = prev.copy()
        prev[live] = nxt
        steps_session.append(live)
        steps_product.append(nxt)
    session = np.concatenate(steps_session)
    product = np.concatenate(steps_product)
    order = np.lexsort((np.arange(len(session)), session))
    session, product = session[order], product[order]

    response: float | np.ndarray = 1.0
    buy_prob: float | np.ndarray = BUY_PROB
    if world.customer_type is not None:
        # In a typed shop price-sensitive customers respond to promotions more and leave full-price carts behind.
        sensitivity = world.sensitivity[cust[session]]
        response = 4.0 * sensitivity
        buy_prob = np.where(discount[product] > 0, BUY_PROB, BUY_PROB * (1.0 - 0.7 * sensitivity))
    boost = 1.0 + world.elasticity[product] * discount[product] * response
    carted = rng.random(len(product)) < np.minimum(CART_PROB * boost, 0.9)
    bought = carted & (rng.random(len(product)) < buy_prob)
    qty = np.where(bought, 1 + rng.poisson(0.3, len(product)), 0)
    warehouse = world.nearest_warehouse[cust[session]]
    np.add.at(units, (warehouse[bought], product[bought]), qty[bought])
    ordering = np.unique(session[bought])
    if not materialize:
        return DayRows(contract.empty("events"), contract.empty("orders"), contract.empty("order_items"), units, n_sessions, ordering, cust)

    day_ts = pd.Timestamp(day, tz="UTC")
    hour = np.clip(rng.normal(15, 4, n_sessions), 0, 22.5)
    start_s = np.sort(hour * 3600 + rng.random(n_sessions))  # distinct session starts
    # Within a session each view comes 5-120 s after the previous; cart/purchase follow their view.
    gap = rng.uniform(5, 120, len(session))
    first = np.r_[True, session[1:] != session[:-1]]
    csum = np.cumsum(gap)
    offset = csum - np.maximum.accumulate(np.where(first, csum - gap, 0))
    view_ts = day_ts + pd.to_timedelta(start_s[session] + offset, unit="s")
    day_session_ids = session_ids(i, session)
    customer_ids = world.customers["customer_id"].to_numpy()[cust[session]]
    product_ids = world.products["product_id"].to_numpy()[product]
    events = pd.concat(
        [
            pd.DataFrame({"event_ts": view_ts, "event_type": "view", "m": np.ones(len(session), bool)}),
            pd.DataFrame({"event_ts": view_ts + pd.to_timedelta(2.0, unit="s"), "event_type": "cart", "m": carted}),
            pd.DataFrame({"event_ts": view_ts + pd.to_timedelta(4.0, unit="s"), "event_type": "purchase", "m": bought}),
        ],
        keys=None,
    )
    idx = np.tile(np.arange(len(session)), 3)
    keep = events["m"].to_numpy()
    events = (
        pd.DataFrame(
            {
                "customer_id": customer_ids[idx[keep]],
                "product_id": product_ids[idx[keep]],
                "event_ts": events["event_ts"].to_numpy()[keep],
                "event_type": events["event_type"].to_numpy()[keep],
                "session_id": day_session_ids[idx[keep]],
            }
        )
        .drop_duplicates(["customer_id", "product_id", "event_ts", "event_type"])
        .sort_values("event_ts", kind="stable")
    )

    # One order per session with a purchase; lines aggregate repeated products.
    lines = pd.DataFrame({"session": session[bought], "product": product[bought], "qty": qty[bought], "ts": view_ts[bought]})
    lines = lines.groupby(["session", "product"], as_index=False).agg(qty=("qty", "sum"), ts=("ts", "max"))
    sess_orders = lines.groupby("session", as_index=False)["ts"].max()
    sess_orders["order_id"] = [f"O{i:04d}{s:06d}" for s in sess_orders["session"]]
    c_idx = cust[sess_orders["session"].to_numpy()]
    orders = pd.DataFrame(
        {
            "order_id": sess_orders["order_id"],
            "customer_id": customer_ids[np.searchsorted(session, sess_orders["session"].to_numpy())],
            "order_ts": sess_orders["ts"] + pd.Timedelta(seconds=4),
            "ship_lat": world.customers["lat"].to_numpy()[c_idx],
            "ship_lon": world.customers["lon"].to_numpy()[c_idx],
            "promised_date": day_ts + pd.to_timedelta(1 + rng.integers(0, 3, len(sess_orders)), unit="D"),
            "warehouse_id": world.warehouses["warehouse_id"].to_numpy()[world.nearest_warehouse[c_idx]],
        }
    )
    orders["window_start"], orders["window_end"] = delivery_slots(np.random.default_rng([cfg.seed, 7, i]), orders["promised_date"])
    orders["device_id"], orders["payment_id"] = abuse.legit_fingerprints(world, i, c_idx)
    lines = lines.merge(sess_orders[["session", "order_id"]], on="session")
    disc = discount[lines["product"].to_numpy()]
    items = pd.DataFrame(
        {
            "order_id": lines["order_id"],
            "product_id": world.products["product_id"].to_numpy()[lines["product"].to_numpy()],
            "qty": lines["qty"].to_numpy(),
            "unit_price": np.round(world.products["price"].to_numpy()[lines["product"].to_numpy()] * (1 - disc), 2),
            "discount": disc,
        }
    )
    return DayRows(events, orders, items, units, n_sessions, ordering, cust)


def delivery_slots(rng: np.random.Generator, promised: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Two-hour delivery slots between 09:00 and 19:00 on the promised day for 60% of orders; the rest take
    any time of the shift (null). A separate random stream, so the rest of the simulation is unchanged."""
    n = len(promised)
    start = promised + pd.to_timedelta(9 + 2 * rng.integers(0, 5, n), unit="h")
    chosen = rng.random(n) < 0.6
    return start.where(chosen), (start + pd.Timedelta(hours=2)).where(chosen)


def session_ids(day_index: int, session: np.ndarray) -> np.ndarray:
    return (f"{day_index:04d}-" + pd.Series(session).astype(str).str.zfill(6)).to_numpy()


def true_uplift(sensitivity: np.ndarray, action: str) -> np.ndarray:
    """Known effect of an action on the conversion probability: helps price-sensitive customers, and the deep
    coupon slightly annoys insensitive ones (so targeting everyone is wasteful)."""
    depth = COUPON_ACTIONS[action]
    return depth * (0.9 * sensitivity - 0.25 * (1.0 - sensitivity) * (depth > 0.1))


def baseline_conversion(world: World, customers: np.ndarray) -> np.ndarray:
    """The chance that each customer buys within the outcome window without a coupon (the experiment's control)."""
    return np.asarray(1.0 - np.exp(-world.cfg.outcome_window_days * world.activity[customers] * 0.35))


def coupon_experiment(world: World, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Campaigns sent every ``campaign_every_days``; rows whose outcome window closes in [start, end]."""
    cfg = world.cfg
    rows, truth = [], []
    actions = [contract.CONTROL, *COUPON_ACTIONS]
    for sent in range(cfg.campaign_every_days // 2, cfg.n_days, cfg.campaign_every_days):
        closes = cfg.start + dt.timedelta(days=sent + cfg.outcome_window_days)
        if not (start <= closes <= end):
            continue
        rng = np.random.default_rng([cfg.seed, 2, sent])
        alive = np.flatnonzero((world.signup_day <= sent) & (world.churn_day > sent))
        chosen = np.sort(rng.choice(alive, size=int(len(alive) * cfg.campaign_share), replace=False))
        treatment = np.asarray(actions)[rng.integers(0, len(actions), len(chosen))]
        sens = world.sensitivity[chosen]
        p_base = baseline_conversion(world, chosen)
        uplift = {a: true_uplift(sens, a) for a in COUPON_ACTIONS}
        effect = np.select([treatment == a for a in COUPON_ACTIONS], [uplift[a] for a in COUPON_ACTIONS], 0.0)
        converted = rng.random(len(chosen)) < np.clip(p_base + effect, 0, 1)
        depth = np.select([treatment == a for a in COUPON_ACTIONS], list(COUPON_ACTIONS.values()), 0.0)
        revenue = np.where(converted, np.round(rng.lognormal(3.5, 0.5, len(chosen)) * (1 - depth), 2), 0.0)
        campaign_id = f"CMP{sent:04d}"
        sent_ts = pd.Timestamp(cfg.start, tz="UTC") + pd.Timedelta(days=sent, hours=9)
        customer_ids = world.customers["customer_id"].to_numpy()[chosen]
        rows.append(
            pd.DataFrame(
                {
                    "campaign_id": campaign_id,
                    "customer_id": customer_ids,
                    "treatment": treatment,
                    "sent_ts": sent_ts,
                    "outcome_end_ts": sent_ts + pd.Timedelta(days=cfg.outcome_window_days),
                    "converted": converted,
                    "revenue": revenue,
                }
            )
        )
        truth.append(
            pd.DataFrame({"campaign_id": campaign_id, "customer_id": customer_ids, "p_base": p_base} | {f"uplift_{a}": uplift[a] for a in COUPON_ACTIONS})
        )
    campaigns = _concat("coupon_campaigns", rows)
    return campaigns, (pd.concat(truth, ignore_index=True) if truth else pd.DataFrame())
