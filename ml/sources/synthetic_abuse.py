"""Fraud and abuse in the synthetic shop, with ground truth and late labels.

Four patterns, each with an early variant (v1) and a drifted one (v2) that takes over in the last part of the
shop's history, so a model trained in the past meets variants it has not seen:

- stolen_card: v1, a new account places 2-4 high-value orders within an hour, shipped far from its home, a new
  card per order; v2, the account signed up 3-20 days before, mid-to-high value orders over 12 hours, shipped
  anywhere.
- promo_abuse: v1, 3-6 new accounts on one device and one address, each a first order with a 20% welcome discount;
  v2, each account on its own device and card, still one address.
- reseller: v1, one account orders 10-40 units of a hot product; v2, 2-4 new accounts sharing one card order 4-9
  units each of the same hot product.
- account_takeover: v1, an account older than 180 days, a new device and card, 1-3 high-value orders shipped far
  from home; v2, the same, shipped anywhere, spread over the day.

Every order (legitimate or not) carries a device and a card fingerprint: a customer's own device for 85% of their
orders (else their second one) and their own card for 92%. Households share addresses naturally (addresses sit on
road nodes), so an address shared by accounts is a signal, not a proof.

Labels arrive late: a chargeback (reason ``fraud``) or a confirmed abuse report (``abuse``) about 30 days after the
order (log-normal, 7-90 days), for most but not all abusive orders; 0.05% of legitimate orders get a ``fraud``
chargeback too (friendly fraud), and 0.1% a ``dispute``, which is not abuse.

Everything here draws on its own random streams, so the legitimate rows of the shop are the same with or without
abuse; the abusive rows are added (new accounts, orders, lines and their events).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ml.sources.synthetic import World

PATTERNS = ("stolen_card", "promo_abuse", "reseller", "account_takeover")
SHARE = {"stolen_card": 0.35, "promo_abuse": 0.25, "reseller": 0.2, "account_takeover": 0.2}
"""Share of the abusive orders per pattern."""
ORDERS_PER_INCIDENT = {"stolen_card": 3.0, "promo_abuse": 4.5, "reseller": 1.5, "account_takeover": 2.0}
LABEL_PROB = {"stolen_card": 0.95, "promo_abuse": 0.8, "reseller": 0.8, "account_takeover": 0.9}
"""Chance an abusive order is ever labelled (charged back or confirmed)."""
DRIFT_START, DRIFT_FULL = 0.6, 0.9
"""v2's share of incidents grows linearly from 0 at this fraction of the shop's history to 1 at that one."""
FRIENDLY_FRAUD, DISPUTE = 0.0005, 0.001
LABEL_DELAY_DAYS = 30.0
OWN_DEVICE, OWN_CARD = 0.85, 0.92
SECOND = 1_000_000
"""A customer's second device (card) is numbered this far after their first; abusers' start at twice it."""
ACCOUNT_SPACE = 1000
"""New accounts per day at most: account numbers are n_customers + day * ACCOUNT_SPACE + k."""


def _fingerprint(prefix: str, index: np.ndarray) -> np.ndarray:
    """Stable opaque ids: a bijection of [0, 1e9) (the multiplier is coprime with 10**9)."""
    code = (index.astype(np.int64) * 2654435761) % 1_000_000_000
    return np.asarray([f"{prefix}{c:09d}" for c in code], dtype=object)


def legit_fingerprints(world: World, day_index: int, customer_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The device and card of each legitimate order: the customer's own, or their second."""
    rng = np.random.default_rng([world.cfg.seed, 10, day_index])
    n = len(customer_index)
    device = customer_index + np.where(rng.random(n) < OWN_DEVICE, 0, SECOND)
    card = customer_index + np.where(rng.random(n) < OWN_CARD, 0, SECOND)
    return _fingerprint("D", device), _fingerprint("K", card)


def drift_share(world: World, day_index: int) -> float:
    """The share of a day's incidents that take the drifted variant."""
    n = world.cfg.n_days
    return float(np.clip((day_index - DRIFT_START * n) / ((DRIFT_FULL - DRIFT_START) * n), 0.0, 1.0))


@dataclass
class AbuseDay:
    """A day's abusive rows: new accounts, orders, lines, the ground truth and the labels they will get."""

    accounts: pd.DataFrame  # customer_index, signup_day, lat, lon
    orders: pd.DataFrame  # contract orders columns + customer_index, session
    items: pd.DataFrame  # order_id, product (index), qty, discount
    truth: pd.DataFrame  # order_id, kind, variant
    labels: pd.DataFrame  # order_id, reported_ts, reason


class _Day:
    """Builds one day's incidents; each incident appends its accounts, orders and lines."""

    def __init__(self, world: World, day_index: int, day: dt.date, addresses: np.ndarray):
        self.world, self.i, self.day = world, day_index, day
        self.rng = np.random.default_rng([world.cfg.seed, 9, day_index])
        self.addresses = addresses
        self.day_ts = pd.Timestamp(day, tz="UTC")
        price = world.products["price"].to_numpy()
        self.expensive = np.flatnonzero(price >= np.quantile(price, 0.9))
        self.mid_high = np.flatnonzero(price >= np.quantile(price, 0.6))
        self.cheap_mid = np.flatnonzero(price <= np.quantile(price, 0.7))
        self.hot = np.argsort(-world.popularity)[: max(5, world.cfg.n_products // 50)]
        self.accounts: list[tuple[int, int, float, float]] = []
        self.orders: list[dict] = []
        self.items: list[tuple[int, int, float, float]] = []  # order number, product, qty, discount
        self.fingerprints = 0

    def address(self, far_from: np.ndarray | None = None) -> np.ndarray:
        """A random address; with ``far_from``, the farthest of five draws from that point."""
        picks = self.addresses[self.rng.integers(0, len(self.addresses), 5 if far_from is not None else 1)]
        if far_from is None:
            return picks[0]
        return picks[np.argmax(((picks - far_from) ** 2).sum(axis=1))]

    def new_account(self, age_days: int = 0) -> tuple[int, np.ndarray]:
        index = self.world.cfg.n_customers + self.i * ACCOUNT_SPACE + len(self.accounts)
        home = self.address()
        self.accounts.append((index, self.i - age_days, float(home[0]), float(home[1])))
        return index, home

    def fresh(self, prefix: str) -> str:
        """A device or card nobody has used before."""
        self.fingerprints += 1
        return str(_fingerprint(prefix, np.asarray([2 * SECOND + self.i * ACCOUNT_SPACE * 10 + self.fingerprints]))[0])

    def order(
        self, kind: str, variant: str, customer: int, ship: np.ndarray, at_s: float, device: str, card: str, lines: list[tuple[int, float, float]]
    ) -> None:
        number = len(self.orders)
        self.orders.append(
            {
                "kind": kind,
                "variant": variant,
                "customer_index": customer,
                "ship_lat": ship[0],
                "ship_lon": ship[1],
                "at_s": at_s,
                "device_id": device,
                "payment_id": card,
            }
        )
        self.items.extend((number, product, qty, discount) for product, qty, discount in lines)

    def hour(self, spread_h: float) -> np.ndarray:
        """Order times (seconds into the day) of an incident: a start, then the rest within ``spread_h`` hours."""
        start = self.rng.uniform(8, 23 - min(spread_h, 14)) * 3600
        return start + np.sort(self.rng.uniform(0, spread_h * 3600, 8))

    def stolen_card(self, v2: bool) -> None:
        account, home = self.new_account(age_days=int(self.rng.integers(3, 21)) if v2 else 0)
        device = self.fresh("D")
        times = self.hour(12.0 if v2 else 1.0)
        ship = self.address() if v2 else self.address(far_from=home)
        pool = self.mid_high if v2 else self.expensive
        for k in range(int(self.rng.integers(2, 5))):
            products = self.rng.choice(pool, size=int(self.rng.integers(1, 3)), replace=False)
            self.order(
                "stolen_card",
                "v2" if v2 else "v1",
                account,
                ship,
                times[k],
                device,
                self.fresh("K"),
                [(p, float(self.rng.integers(1, 3)), 0.0) for p in products],
            )

    def promo_abuse(self, v2: bool) -> None:
        ship = self.address()
        device, card = self.fresh("D"), self.fresh("K")
        times = self.hour(4.0)
        for k in range(int(self.rng.integers(3, 7))):
            account, _ = self.new_account()
            products = self.rng.choice(self.cheap_mid, size=int(self.rng.integers(1, 3)), replace=False)
            self.order(
                "promo_abuse",
                "v2" if v2 else "v1",
                account,
                ship,
                times[k],
                self.fresh("D") if v2 else device,
                self.fresh("K") if v2 else card,
                [(p, 1.0, 0.2) for p in products],
            )

    def reseller(self, v2: bool) -> None:
        product = int(self.rng.choice(self.hot))
        times = self.hour(6.0)
        if not v2:
            account, home = self.new_account() if self.rng.random() < 0.5 else self.old_account(min_age=0)
            self.order("reseller", "v1", account, home, times[0], self.fresh("D"), self.fresh("K"), [(product, float(self.rng.integers(10, 41)), 0.0)])
            return
        card = self.fresh("K")
        for k in range(int(self.rng.integers(2, 5))):
            account, home = self.new_account()
            self.order("reseller", "v2", account, home, times[k], self.fresh("D"), card, [(product, float(self.rng.integers(4, 10)), 0.0)])

    def old_account(self, min_age: int) -> tuple[int, np.ndarray]:
        """A living legitimate customer who signed up at least ``min_age`` days ago (a new account if none has)."""
        world = self.world
        pool = np.flatnonzero((world.signup_day <= self.i - min_age) & (world.churn_day > self.i))
        if len(pool) == 0:
            return self.new_account()
        victim = int(self.rng.choice(pool))
        return victim, world.customers[["lat", "lon"]].to_numpy()[victim]

    def account_takeover(self, v2: bool) -> None:
        account, home = self.old_account(min_age=180)
        device, card = self.fresh("D"), self.fresh("K")
        ship = self.address() if v2 else self.address(far_from=home)
        times = self.hour(10.0 if v2 else 2.0)
        for k in range(int(self.rng.integers(1, 4))):
            products = self.rng.choice(self.mid_high if v2 else self.expensive, size=int(self.rng.integers(1, 4)), replace=False)
            self.order("account_takeover", "v2" if v2 else "v1", account, ship, times[k], device, card, [(p, 1.0, 0.0) for p in products])


def abuse_day(world: World, day_index: int, day: dt.date, legit_orders: int, first_session: int, addresses: np.ndarray) -> AbuseDay:
    """The abusive incidents of one day, about ``abuse_rate`` of the day's orders, and their future labels."""
    builder = _Day(world, day_index, day, addresses)
    rate = world.cfg.abuse_rate
    expected = rate / (1.0 - rate) * legit_orders
    v2_share = drift_share(world, day_index)
    for kind in PATTERNS:
        for _ in range(builder.rng.poisson(expected * SHARE[kind] / ORDERS_PER_INCIDENT[kind])):
            getattr(builder, kind)(bool(builder.rng.random() < v2_share))
    return _frames(world, builder, first_session)


def _frames(world: World, built: _Day, first_session: int) -> AbuseDay:
    accounts = pd.DataFrame(built.accounts, columns=["customer_index", "signup_day", "lat", "lon"])
    if not built.orders:
        empty = pd.DataFrame()
        return AbuseDay(accounts, empty, empty, empty, empty)
    orders = pd.DataFrame(built.orders)
    orders["session"] = first_session + np.arange(len(orders))
    orders["order_id"] = [f"O{built.i:04d}{s:06d}" for s in orders["session"]]
    orders["order_ts"] = built.day_ts + pd.to_timedelta(orders["at_s"], unit="s")
    depots = world.warehouses[["lat", "lon"]].to_numpy()
    ship = orders[["ship_lat", "ship_lon"]].to_numpy()
    nearest = ((ship[:, None, :] - depots[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    orders["warehouse_id"] = world.warehouses["warehouse_id"].to_numpy()[nearest]
    orders["promised_date"] = built.day_ts + pd.to_timedelta(1 + built.rng.integers(0, 3, len(orders)), unit="D")
    items = pd.DataFrame(built.items, columns=["order_number", "product", "qty", "discount"])
    items = items.groupby(["order_number", "product"], as_index=False).agg(qty=("qty", "sum"), discount=("discount", "max"))
    items["order_id"] = orders["order_id"].to_numpy()[items["order_number"].to_numpy()]
    truth = orders[["order_id", "kind", "variant"]].copy()
    labelled = built.rng.random(len(orders)) < orders["kind"].map(LABEL_PROB).to_numpy()
    labels = _labels(built.rng, orders.loc[labelled, ["order_id", "order_ts", "kind"]])
    return AbuseDay(accounts, orders, items, truth, labels)


def _labels(rng: np.random.Generator, orders: pd.DataFrame) -> pd.DataFrame:
    """When each labelled order is reported: payment fraud as a chargeback, the rest as confirmed abuse."""
    delay = np.clip(rng.lognormal(np.log(LABEL_DELAY_DAYS), 0.35, len(orders)), 7, 90)
    return pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "reported_ts": (orders["order_ts"] + pd.to_timedelta(delay, unit="D")).to_numpy(),
            "reason": np.where(orders["kind"].isin(["stolen_card", "account_takeover"]), "fraud", "abuse"),
        }
    )


def false_labels(world: World, day_index: int, order_ids: np.ndarray, day: pd.Timestamp) -> pd.DataFrame:
    """Chargebacks on a day's legitimate orders: friendly fraud (reason ``fraud``) and disputes (not abuse),
    reported about 30 days after the day."""
    rng = np.random.default_rng([world.cfg.seed, 11, day_index])
    draw = rng.random(len(order_ids))
    chosen = draw < FRIENDLY_FRAUD + DISPUTE
    labels = _labels(rng, pd.DataFrame({"order_id": order_ids[chosen], "order_ts": day + pd.Timedelta(hours=12), "kind": "stolen_card"}))
    labels["reason"] = np.where(draw[chosen] < FRIENDLY_FRAUD, "fraud", "dispute")
    return labels
