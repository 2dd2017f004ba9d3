"""The synthetic shop in closed loop: day by day it reacts to what the platform published the day before, and
keeps the books.

Sessions arrive exactly as in the open-loop shop (``synthetic.simulate_day``, the same random streams), and each
reaction below draws from a stream of its own keyed by the day and the session or customer, so two policies meet the
same customers on the same days with the same dice (common random numbers); a policy changes only what happens
inside the sessions. The response rules:

- **Recommendations**: a session shows the customer's served list (its first ``K_SHOWN``). Position k (1-based) is
  examined with probability 1 / log2(k + 1); an examined product is clicked with probability
  1 - exp(-ATTRACTION * n_products * preference), where preference is the customer's true preference
  (``synthetic.preference``: the chance that one of their own views lands on it). A click is a view, and carts and
  buys like any other view; what it buys joins the session's order.
- **Coupons**: ``interventions`` published for ds reach their customers the next day (a customer holding a coupon
  ignores a second). With the action's true uplift u (``synthetic.true_uplift``) and the customer's chance p of
  buying in the window anyway (``synthetic.baseline_conversion``): if u > 0 the coupon brings an extra order (one
  product drawn by preference) on a day of the 7-day window with probability u / (1 - p); if u < 0 each of the
  customer's sessions in the window is lost with probability -u / p. Either way buying in the window moves from p to
  p + u. The coupon is redeemed on the customer's first order in the window: its discount comes off that order.
- **Stock**: the day's lines are filled in time order from the stock on hand; what stock cannot fill is a lost sale.
  Replenishment orders arrive after the product's lead time. Holding costs 25% of unit cost a year on the stock
  left at the end of each day.
- **Deliveries**: an order promised for day d is on time when a route of day d reaches it by its window's end (by
  the end of day d without a window). A late or unrouted delivery costs the customer's return: each of their
  sessions in the next ``LATE_MEMORY_DAYS`` days is lost with probability ``LATE_SESSION_LOSS``. Driving costs
  ``COST_PER_KM``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import contract
from ml.sources import synthetic
from ml.sources import synthetic_abuse as fingerprints
from ml.sources.synthetic import Batch, Stock, World

K_SHOWN = 10
"""Recommendations a session shows."""
ATTRACTION = 0.02
"""Click propensity per unit of preference, scaled by the catalogue size: an average product shown first is
clicked 2% of the time, a customer's favourite (preference 0.05 in a 400-product shop) 33%."""
COUPON_WINDOW_DAYS = 7
LATE_MEMORY_DAYS = 30
LATE_SESSION_LOSS = 0.3
HOLDING_RATE = 0.25
"""Per year, as a share of unit cost (the inventory plan's default)."""
COST_PER_KM = 0.6

_COUPON, _SESSION, _CLICK, _ORDER, _EXTRA = 50, 51, 52, 53, 54  # random streams of the closed loop


@dataclass
class Decisions:
    """What the platform (or a policy standing in for it) decided for the shop's next day."""

    lists: np.ndarray | None = None
    """(customers, K) product indices of each customer's served list (-1: empty slot); None: no lists shown."""
    coupon_customers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coupon_actions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    """The action (``synthetic.COUPON_ACTIONS``) sent to each of ``coupon_customers``."""
    replenishment: np.ndarray | None = None
    """(warehouses, products) units ordered today; None: the shop's own (s, S) policy orders."""
    routes: pd.DataFrame | None = None
    """Today's ``delivery_routes`` rows (order_id, eta, leg_metres); None: deliveries are not simulated."""


@dataclass
class DayResult:
    """One simulated day: the drop the shop delivers (contract tables) and its books."""

    day: dt.date
    tables: dict[str, pd.DataFrame]
    ledger: dict[str, Any]


def id_index(ids: pd.Series | np.ndarray) -> np.ndarray:
    """``C000123`` -> 123, ``P00012`` -> 12: the synthetic shop's customer and product ids are their index."""
    return pd.Series(ids).astype(str).str[1:].astype(np.int64).to_numpy()


@dataclass
class ClosedLoopShop:
    """The shop's state between days: stock, orders awaiting delivery, and each customer's coupon and memory of a
    late delivery."""

    world: World
    stock: Stock
    day_index: int
    """The next day to simulate (days since the shop opened)."""
    due: pd.DataFrame
    """Orders awaiting delivery: order_id, customer (index), promised (date), window_end (timestamp or NaT)."""
    late_until: np.ndarray
    coupon_depth: np.ndarray
    coupon_until: np.ndarray
    session_loss: np.ndarray
    extra_order_day: np.ndarray

    @classmethod
    def after(cls, world: World, history: Batch) -> ClosedLoopShop:
        """The shop the day after ``history`` (an open-loop ``synthetic.simulate`` from the first day) ended."""
        if world.cfg.abuse_rate > 0:
            raise ValueError("the closed-loop shop simulates legitimate customers only: build its world with abuse_rate=0")
        orders = history.tables["orders"]
        last = history.tables["inventory"]["ds"].max().date()
        n = world.cfg.n_customers
        shop = cls(
            world=world,
            stock=history.stock,
            day_index=(last - world.cfg.start).days + 1,
            due=pd.DataFrame(),
            late_until=np.full(n, -1),
            coupon_depth=np.zeros(n),
            coupon_until=np.full(n, -1),
            session_loss=np.zeros(n),
            extra_order_day=np.full(n, -1),
        )
        shop.due = _awaiting(orders[orders["promised_date"].dt.date >= shop.today])
        return shop

    @property
    def today(self) -> dt.date:
        return self.world.cfg.start + dt.timedelta(days=self.day_index)

    def day(self, decisions: Decisions) -> DayResult:
        """Simulate the next day under ``decisions`` and return its drop and books."""
        w, i, day = self.world, self.day_index, self.today
        self.stock.receive(i)
        inventory = synthetic.inventory_frame(w, day, self.stock.on_hand, self.stock.on_order())
        coupons = self._send_coupons(i, decisions)
        rows = synthetic.simulate_day(w, i, day, True)
        kept = self._kept_sessions(i, rows)
        discount = synthetic.discounts_on(w, day)
        organic = _organic_lines(rows, kept)
        recommended, rec_events, rec_stats = _recommended_lines(w, i, rows, kept, discount, decisions.lists)
        extra, extra_events = self._extra_orders(i, day, discount)
        lines = pd.concat([organic, recommended, extra], ignore_index=True)
        lines = self._fill(lines)
        lines, redeemed = self._redeem(i, lines)
        orders = self._orders(i, day, rows, lines)
        events = _events(rows, kept, lines, [rec_events, extra_events])
        delivered = self._deliver(day, decisions.routes, orders)
        replenishment = self.stock.base_stock_orders() if decisions.replenishment is None else decisions.replenishment
        self.stock.order(i, replenishment)
        self.day_index += 1
        ledger = self._books(day, rows, kept, lines, rec_stats, coupons, redeemed, delivered, replenishment)
        campaigns, _ = synthetic.coupon_experiment(w, day, day)
        tables = {
            "events": events,
            "orders": orders,
            "order_items": _items(lines, w.products["price"].to_numpy()),
            "inventory": inventory,
            "coupon_campaigns": campaigns,
            "chargebacks": contract.empty("chargebacks"),
            "customers": contract.conform("customers", w.customers[w.customers["signup_date"] < pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")]),
            "products": contract.conform("products", w.products),
            "warehouses": contract.conform("warehouses", w.warehouses),
            "promotions": contract.conform("promotions", w.promotions[w.promotions["start_date"] <= pd.Timestamp(day + dt.timedelta(days=28), tz="UTC")]),
        }
        return DayResult(day, tables, ledger)

    # -- reactions -------------------------------------------------------------------------------------------

    def _send_coupons(self, i: int, decisions: Decisions) -> dict[str, int]:
        """Hand out the day's coupons (not to a customer already holding one) and draw what each will do."""
        w = self.world
        u = np.random.default_rng([w.cfg.seed, _COUPON, i]).random((w.cfg.n_customers, 2))
        customers = np.asarray(decisions.coupon_customers, dtype=np.int64)
        actions = np.asarray(decisions.coupon_actions, dtype=object)
        free = self.coupon_until[customers] < i
        customers, actions = customers[free], actions[free]
        uplift = np.zeros(len(customers))
        depth = np.zeros(len(customers))
        for action, rate in synthetic.COUPON_ACTIONS.items():
            mine = actions == action
            uplift[mine] = synthetic.true_uplift(w.sensitivity[customers[mine]], action)
            depth[mine] = rate
        unknown = set(actions) - set(synthetic.COUPON_ACTIONS)
        if unknown:
            raise ValueError(f"interventions: unknown action(s) {sorted(unknown)}; the shop knows {sorted(synthetic.COUPON_ACTIONS)}")
        p = synthetic.baseline_conversion(w, customers)
        extra = (uplift > 0) & (u[customers, 0] < uplift / np.maximum(1.0 - p, 1e-9))
        last = i + COUPON_WINDOW_DAYS - 1
        self.coupon_depth[customers] = depth
        self.coupon_until[customers] = last
        self.session_loss[customers] = np.where(uplift < 0, np.minimum(-uplift / np.maximum(p, 1e-9), 1.0), 0.0)
        self.extra_order_day[customers] = np.where(extra, i + (u[customers, 1] * COUPON_WINDOW_DAYS).astype(np.int64), -1)
        return {"coupons_sent": len(customers), "coupons_ignored": int((~free).sum())}

    def _kept_sessions(self, i: int, rows: synthetic.DayRows) -> np.ndarray:
        """Which of the day's sessions still happen after late deliveries and unwelcome coupons."""
        u = np.random.default_rng([self.world.cfg.seed, _SESSION, i]).random(rows.sessions)
        c = rows.session_customers
        late = np.where(self.late_until[c] >= i, LATE_SESSION_LOSS, 0.0)
        annoyed = np.where(self.coupon_until[c] >= i, self.session_loss[c], 0.0)
        return np.asarray(u >= 1.0 - (1.0 - late) * (1.0 - annoyed))

    def _extra_orders(self, i: int, day: dt.date, discount: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The orders coupons bring today: one product each, drawn by the customer's preference."""
        w = self.world
        customers = np.flatnonzero(self.extra_order_day == i)
        self.extra_order_day[customers] = -1
        u = np.random.default_rng([w.cfg.seed, _EXTRA, i]).random((w.cfg.n_customers, 2))[customers]
        if not len(customers):
            return _lines(), contract.empty("events")
        every = np.arange(w.cfg.n_products)
        pref = synthetic.preference(w, discount, np.repeat(customers, len(every)), np.tile(every, len(customers))).reshape(len(customers), -1)
        cdf = np.cumsum(pref, axis=1)
        product = np.minimum((cdf < (u[:, 0] * cdf[:, -1])[:, None]).sum(axis=1), w.cfg.n_products - 1)
        ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(9 * 3600 + u[:, 1] * 12 * 3600, unit="s")
        lines = _lines(
            order_id=[f"O{i:04d}X{c:06d}" for c in customers],
            customer=customers,
            product=product,
            qty=np.ones(len(customers), dtype=np.int64),
            ts=ts,
            promo=discount[product],
            source="coupon",
            session=np.full(len(customers), -1),
        )
        return lines, _line_events(w, lines, [f"{i:04d}-X{c:06d}" for c in customers], ts - pd.Timedelta(seconds=4))

    def _fill(self, lines: pd.DataFrame) -> pd.DataFrame:
        """Fill lines in time order from stock on hand; ``filled`` is what was sold, the rest of ``qty`` is lost."""
        n_p = self.world.cfg.n_products
        warehouse = self.world.nearest_warehouse[lines["customer"].to_numpy()]
        lines = lines.assign(warehouse=warehouse).sort_values(["ts", "order_id", "product"], kind="stable").reset_index(drop=True)
        key = lines["warehouse"].to_numpy() * n_p + lines["product"].to_numpy()
        qty = lines["qty"].to_numpy()
        before = lines.groupby(key)["qty"].cumsum().to_numpy() - qty
        on_hand = self.stock.on_hand.ravel()
        filled = np.clip(on_hand[key] - before, 0, qty)
        np.subtract.at(on_hand, key, filled)
        self.stock.on_hand = on_hand.reshape(self.stock.on_hand.shape)
        return lines.assign(filled=filled)

    def _redeem(self, i: int, lines: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """Take each coupon holder's discount off their first order in the window; returns the lines with the
        coupon's share (``coupon``) and the number of coupons redeemed."""
        sold = lines[lines["filled"] > 0]
        holders = sold[(self.coupon_until[sold["customer"].to_numpy()] >= i) & (self.coupon_depth[sold["customer"].to_numpy()] > 0)]
        first = holders.sort_values("ts", kind="stable").drop_duplicates("customer")
        depth = pd.Series(self.coupon_depth[first["customer"].to_numpy()], index=first["order_id"].to_numpy())
        self.coupon_depth[first["customer"].to_numpy()] = 0.0
        return lines.assign(coupon=lines["order_id"].map(depth).fillna(0.0).to_numpy()), len(first)

    def _orders(self, i: int, day: dt.date, rows: synthetic.DayRows, lines: pd.DataFrame) -> pd.DataFrame:
        """The orders of the day's filled lines: the open-loop shop's rows for its sessions' orders, new rows (with
        promised dates and slots drawn per session or customer) for orders recommendations or coupons created."""
        w = self.world
        sold = lines[lines["filled"] > 0]
        placed = sold.groupby("order_id", as_index=False).agg(customer=("customer", "first"), session=("session", "first"), ts=("ts", "max"))
        known = rows.orders[rows.orders["order_id"].isin(placed["order_id"])]
        new = placed[~placed["order_id"].isin(known["order_id"])]
        if not len(new):
            return contract.conform("orders", known)
        u_session = np.random.default_rng([w.cfg.seed, _ORDER, i, 0]).random((max(rows.sessions, 1), 3))
        u_customer = np.random.default_rng([w.cfg.seed, _ORDER, i, 1]).random((w.cfg.n_customers, 3))
        session = new["session"].to_numpy()
        customer = new["customer"].to_numpy()
        u = np.where((session >= 0)[:, None], u_session[np.maximum(session, 0)], u_customer[customer])
        day_ts = pd.Timestamp(day, tz="UTC")
        promised = day_ts + pd.to_timedelta(1 + (u[:, 0] * 3).astype(int), unit="D")
        slot = promised + pd.to_timedelta(9 + 2 * (u[:, 1] * 5).astype(int), unit="h")
        with_slot = u[:, 2] < 0.6
        device, card = fingerprints.legit_fingerprints(w, i, customer)
        created = pd.DataFrame(
            {
                "order_id": new["order_id"].to_numpy(),
                "customer_id": w.customers["customer_id"].to_numpy()[customer],
                "order_ts": new["ts"].to_numpy() + pd.Timedelta(seconds=4),
                "ship_lat": w.customers["lat"].to_numpy()[customer],
                "ship_lon": w.customers["lon"].to_numpy()[customer],
                "promised_date": promised,
                "warehouse_id": w.warehouses["warehouse_id"].to_numpy()[w.nearest_warehouse[customer]],
                "window_start": pd.Series(slot).where(with_slot).to_numpy(),
                "window_end": pd.Series(slot + pd.Timedelta(hours=2)).where(with_slot).to_numpy(),
                "device_id": device,
                "payment_id": card,
            }
        )
        return contract.conform("orders", pd.concat([known, created], ignore_index=True).sort_values("order_ts", kind="stable"))

    def _deliver(self, day: dt.date, routes: pd.DataFrame | None, orders: pd.DataFrame) -> dict[str, Any]:
        """Deliver the orders promised for today along today's routes; late or unrouted customers remember it."""
        due = self.due[self.due["promised"] == day] if len(self.due) else self.due
        waiting = self.due[self.due["promised"] > day] if len(self.due) else self.due
        self.due = pd.concat([waiting, _awaiting(orders)], ignore_index=True)
        if routes is None:
            return {"deliveries_due": len(due), "deliveries_on_time": None, "deliveries_late": None, "deliveries_unrouted": None, "delivery_km": None}
        stops = routes.dropna(subset=["order_id"]).drop_duplicates("order_id").set_index("order_id")["eta"]
        eta = pd.to_datetime(stops.reindex(due["order_id"]).to_numpy(), utc=True)
        end_of_day = pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")
        deadline = pd.to_datetime(due["window_end"], utc=True).fillna(end_of_day).to_numpy()
        routed = ~pd.isna(eta)
        on_time = routed & (eta.to_numpy() <= deadline)
        self.late_until[due["customer"].to_numpy()[~on_time]] = self.day_index + LATE_MEMORY_DAYS
        return {
            "deliveries_due": len(due),
            "deliveries_on_time": int(on_time.sum()),
            "deliveries_late": int((routed & ~on_time).sum()),
            "deliveries_unrouted": int((~routed).sum()),
            "delivery_km": float(routes["leg_metres"].sum() / 1000.0),
        }

    def _books(
        self,
        day: dt.date,
        rows: synthetic.DayRows,
        kept: np.ndarray,
        lines: pd.DataFrame,
        rec_stats: dict[str, int],
        coupons: dict[str, int],
        redeemed: int,
        delivered: dict[str, Any],
        replenishment: np.ndarray,
    ) -> dict[str, Any]:
        products = self.world.products
        price = products["price"].to_numpy()[lines["product"].to_numpy()]
        cost = products["unit_cost"].to_numpy()[lines["product"].to_numpy()]
        filled = lines["filled"].to_numpy()
        before_coupon = np.round(price * (1 - lines["promo"].to_numpy()), 2) * filled
        coupon_discount = before_coupon * lines["coupon"].to_numpy()
        revenue = float((before_coupon - coupon_discount).sum())
        cogs = float((cost * filled).sum())
        unit_cost = products["unit_cost"].to_numpy()[None, :]
        holding = float((self.stock.on_hand * unit_cost).sum() * HOLDING_RATE / 365.0)
        km = delivered["delivery_km"]
        delivery_cost = 0.0 if km is None else km * COST_PER_KM
        recommended = lines["source"].to_numpy() == "recommended"
        return {
            "day": day.isoformat(),
            "sessions": rows.sessions,
            "sessions_lost": int((~kept).sum()),
            "orders": int(lines.loc[filled > 0, "order_id"].nunique()),
            "demand_units": int(lines["qty"].sum()),
            "sold_units": int(filled.sum()),
            "lost_units": int((lines["qty"].to_numpy() - filled).sum()),
            "revenue": round(revenue, 2),
            "cogs": round(cogs, 2),
            "coupon_discount": round(float(coupon_discount.sum()), 2),
            "holding_cost": round(holding, 2),
            "delivery_cost": round(delivery_cost, 2),
            "gross_profit": round(revenue - cogs - holding - delivery_cost, 2),
            **rec_stats,
            "rec_hit_sessions": int(lines.loc[recommended & (filled > 0), "session"].nunique()),
            "rec_units": int(filled[recommended].sum()),
            "rec_revenue": round(float((before_coupon - coupon_discount)[recommended].sum()), 2),
            **coupons,
            "coupons_redeemed": redeemed,
            "coupon_orders": int(lines.loc[(lines["source"] == "coupon") & (filled > 0), "order_id"].nunique()),
            **delivered,
            "reorder_lines": int((replenishment > 0).sum()),
            "reorder_units": int(replenishment.sum()),
            "on_hand_units": int(self.stock.on_hand.sum()),
        }


# -- lines and events ----------------------------------------------------------------------------------------


_LINE_TYPES = {
    "order_id": object,
    "customer": np.int64,
    "product": np.int64,
    "qty": np.int64,
    "ts": "datetime64[ns, UTC]",
    "promo": float,
    "source": object,
    "session": np.int64,
}


def _lines(**columns: Any) -> pd.DataFrame:
    """Order lines before stock fills them (typed, so that an empty day concatenates cleanly)."""
    if not columns:
        return pd.DataFrame({n: pd.Series(dtype=t) for n, t in _LINE_TYPES.items()})
    return pd.DataFrame({n: columns[n] for n in _LINE_TYPES}).astype(_LINE_TYPES)


def _organic_lines(rows: synthetic.DayRows, kept: np.ndarray) -> pd.DataFrame:
    """The open-loop shop's order lines of the sessions that still happen."""
    if not len(rows.orders):
        return _lines()
    orders = rows.orders.assign(session=rows.orders["order_id"].str[5:].astype(np.int64))
    orders = orders[kept[orders["session"].to_numpy()]]
    items = rows.items.merge(orders[["order_id", "customer_id", "order_ts", "session"]], on="order_id")
    return _lines(
        order_id=items["order_id"].to_numpy(),
        customer=id_index(items["customer_id"]),
        product=id_index(items["product_id"]),
        qty=items["qty"].to_numpy(),
        ts=items["order_ts"].to_numpy(),
        promo=items["discount"].to_numpy(),
        source="organic",
        session=items["session"].to_numpy(),
    )


def _recommended_lines(
    w: World, i: int, rows: synthetic.DayRows, kept: np.ndarray, discount: np.ndarray, lists: np.ndarray | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """What the sessions that still happen click and buy from their served lists."""
    u = np.random.default_rng([w.cfg.seed, _CLICK, i]).random((rows.sessions, K_SHOWN, 3))
    sessions = np.flatnonzero(kept)
    stats = {"rec_sessions": 0, "rec_clicks": 0}
    if lists is None or not len(sessions):
        return _lines(), contract.empty("events"), stats
    customers = rows.session_customers[sessions]
    shown = np.full((len(sessions), K_SHOWN), -1, dtype=np.int64)
    width = min(K_SHOWN, lists.shape[1])
    shown[:, :width] = lists[customers, :width]
    valid = shown >= 0
    product = np.maximum(shown, 0)
    pref = synthetic.preference(w, discount, np.repeat(customers, K_SHOWN), product.ravel()).reshape(product.shape)
    examine = 1.0 / np.log2(np.arange(K_SHOWN) + 2.0)
    click = valid & (u[sessions, :, 0] < examine * (1.0 - np.exp(-ATTRACTION * w.cfg.n_products * pref)))
    boost = 1.0 + w.elasticity[product] * discount[product]
    cart = click & (u[sessions, :, 1] < np.minimum(synthetic.CART_PROB * boost, 0.9))
    buy = cart & (u[sessions, :, 2] < synthetic.BUY_PROB)
    stats = {"rec_sessions": int(valid.any(axis=1).sum()), "rec_clicks": int(click.sum())}
    first_view = rows.events.groupby("session_id")["event_ts"].min()
    session_ids = synthetic.session_ids(i, sessions)
    start = pd.to_datetime(first_view.reindex(session_ids).to_numpy(), utc=True)
    row, position = np.nonzero(click)
    view_ts = start[row] + pd.to_timedelta(0.5 * (position + 1), unit="s")
    events = [_event_frame(w, customers[row], product[row, position], view_ts, "view", session_ids[row])]
    carted = cart[row, position]
    cart_ts = view_ts[carted] + pd.Timedelta(seconds=2)
    events.append(_event_frame(w, customers[row][carted], product[row, position][carted], cart_ts, "cart", session_ids[row][carted]))
    bought = buy[row, position]
    r, p = row[bought], product[row, position][bought]
    lines = _lines(
        order_id=synthetic.order_ids(i, sessions[r]),
        customer=customers[r],
        product=p,
        qty=np.ones(len(r), dtype=np.int64),
        ts=view_ts[bought] + pd.Timedelta(seconds=4),
        promo=discount[p],
        source="recommended",
        session=sessions[r],
    )
    return lines, pd.concat(events, ignore_index=True), stats


def _event_frame(w: World, customers: np.ndarray, products: np.ndarray, ts: Any, kind: str, sessions: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": w.customers["customer_id"].to_numpy()[customers],
            "product_id": w.products["product_id"].to_numpy()[products],
            "event_ts": ts,
            "event_type": kind,
            "session_id": sessions,
        }
    )


def _line_events(w: World, lines: pd.DataFrame, sessions: list[str], view_ts: pd.DatetimeIndex) -> pd.DataFrame:
    """A view and a cart before each line (its purchase event follows if stock fills it)."""
    customers, products = lines["customer"].to_numpy(), lines["product"].to_numpy()
    ids = np.asarray(sessions, dtype=object)
    return pd.concat(
        [_event_frame(w, customers, products, view_ts, "view", ids), _event_frame(w, customers, products, view_ts + pd.Timedelta(seconds=2), "cart", ids)],
        ignore_index=True,
    )


def _events(rows: synthetic.DayRows, kept: np.ndarray, lines: pd.DataFrame, added: list[pd.DataFrame]) -> pd.DataFrame:
    """The day's events: the open-loop shop's for the sessions that still happen, less the purchases stock did not
    fill, plus the clicks and carts the platform caused and a purchase for every recommended or coupon line filled."""
    events = rows.events
    session_number = events["session_id"].str[5:].astype(np.int64).to_numpy() if len(events) else np.zeros(0, dtype=np.int64)
    events = events[kept[session_number]] if len(events) else events
    organic = lines[lines["source"] == "organic"]
    unfilled = organic.loc[organic["filled"] == 0, ["order_id", "product"]]
    lost = set(zip(unfilled["order_id"].str[5:].astype(np.int64), unfilled["product"], strict=True))
    if lost and len(events):
        key = zip(events["session_id"].str[5:].astype(np.int64), id_index(events["product_id"]), strict=True)
        drop = (events["event_type"] == "purchase").to_numpy() & np.fromiter((k in lost for k in key), bool, len(events))
        events = events[~drop]
    caused = lines[(lines["source"] != "organic") & (lines["filled"] > 0)]
    purchases = pd.DataFrame(
        {
            "customer_id": [f"C{c:06d}" for c in caused["customer"]],
            "product_id": [f"P{p:05d}" for p in caused["product"]],
            "event_ts": caused["ts"].to_numpy(),
            "event_type": "purchase",
            "session_id": (caused["order_id"].str[1:5] + "-" + caused["order_id"].str[5:]).to_numpy(),
        }
    )
    frames = [f for f in (events, *added, purchases) if len(f)]
    if not frames:
        return contract.empty("events")
    out = pd.concat(frames, ignore_index=True).drop_duplicates(["customer_id", "product_id", "event_ts", "event_type"])
    return contract.conform("events", out.sort_values("event_ts", kind="stable"))


def _items(lines: pd.DataFrame, price: np.ndarray) -> pd.DataFrame:
    """Contract order lines from the filled lines: repeated products of an order merged, prices after promotion
    and coupon."""
    sold = lines[lines["filled"] > 0]
    if not len(sold):
        return contract.empty("order_items")
    merged = sold.groupby(["order_id", "product"], as_index=False).agg(qty=("filled", "sum"), promo=("promo", "first"), coupon=("coupon", "first"))
    return contract.conform(
        "order_items",
        pd.DataFrame(
            {
                "order_id": merged["order_id"],
                "product_id": [f"P{p:05d}" for p in merged["product"]],
                "qty": merged["qty"],
                "unit_price": np.round(price[merged["product"].to_numpy()] * (1.0 - merged["promo"]) * (1.0 - merged["coupon"]), 2),
                "discount": 1.0 - (1.0 - merged["promo"]) * (1.0 - merged["coupon"]),
            }
        ),
    )


def _awaiting(orders: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "customer": id_index(orders["customer_id"]) if len(orders) else np.zeros(0, dtype=np.int64),
            "promised": orders["promised_date"].dt.date.to_numpy(),
            "window_end": pd.to_datetime(orders["window_end"], utc=True).to_numpy(),
        }
    )
