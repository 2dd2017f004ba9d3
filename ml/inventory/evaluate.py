"""Judge a replenishment plan by simulation on demand it did not see, beside a base-stock policy.

The simulation is the plan's own model of the warehouse (lost sales, orders landing ``lead`` days after they are
placed, on-order stock landing on day 0, closing stock valued at cost), run on actual demand: fill rate and
cost are what the plan would have delivered. The base-stock policy is the textbook closed-loop rival: every day
it orders the inventory position back up to mean protection-period demand plus the same safety stock, in whole
cases and at least the MOQ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.inventory.formulation import PlanConfig, WarehouseProblem, economics, order_days


@dataclass(frozen=True)
class Outcome:
    fill_rate: float  # units served / units demanded, over all SKUs
    cost: float  # purchase + holding + lost sales + order lines - closing stock at cost
    lost_units: float
    order_lines: int

    def as_dict(self) -> dict:
        return {"fill_rate": self.fill_rate, "cost": self.cost, "lost_units": self.lost_units, "order_lines": self.order_lines}


def order_matrix(problem: WarehouseProblem, orders: pd.DataFrame) -> np.ndarray:
    """A plan's order lines as units placed per [sku, day]."""
    qty = np.zeros((len(problem.skus), problem.horizon))
    row = pd.Series(np.arange(len(problem.skus)), index=problem.skus["product_id"].astype(str))
    day = pd.Series(np.arange(problem.horizon), index=problem.days)
    if len(orders):
        np.add.at(
            qty, (row[orders["product_id"].astype(str)].to_numpy(), day[pd.DatetimeIndex(orders["order_date"])].to_numpy()), orders["qty"].to_numpy(float)
        )
    return qty


def simulate(problem: WarehouseProblem, placed: np.ndarray, demand: np.ndarray, config: PlanConfig) -> Outcome:
    """Run fixed orders ``placed[sku, day]`` against ``demand[sku, day]``."""
    e = economics(problem, config)
    n, horizon = placed.shape
    arriving = np.zeros((n, horizon))
    for i, t in zip(*np.nonzero(placed), strict=True):
        if t + e.lead[i] < horizon:
            arriving[i, t + e.lead[i]] += placed[i, t]
    stock, holding, lost = e.start.astype(float).copy(), 0.0, np.zeros(n)
    for day in range(horizon):
        stock, lost_today = _serve_day(stock + arriving[:, day], demand[:, day])
        lost += lost_today
        holding += float(e.holding @ stock)
    return _outcome(e, config, placed, demand, lost, holding, stock)


def base_stock(problem: WarehouseProblem, demand: np.ndarray, config: PlanConfig) -> tuple[np.ndarray, Outcome]:
    """Daily order-up-to policy on the inventory position, run against ``demand``; returns its orders too."""
    e = economics(problem, config)
    n, horizon = demand.shape
    protection = np.minimum(e.lead + 1, horizon)
    level = np.array([problem.p50[i, : protection[i]].sum() for i in range(n)]) + e.safety
    min_line = np.ceil(e.moq / e.case) * e.case
    placed, arriving = np.zeros((n, horizon)), np.zeros((n, horizon))
    stock, holding, lost = e.start.astype(float).copy(), 0.0, np.zeros(n)
    for day in range(horizon):
        orderable = np.array([day in order_days(e.lead[i], horizon) for i in range(n)])
        position = stock + arriving[:, day:].sum(axis=1)
        gap = np.where(orderable, level - position, 0.0)
        qty = np.where(gap > 0, np.maximum(np.ceil(gap / e.case) * e.case, min_line), 0.0)
        placed[:, day] = qty
        land = day + e.lead
        arriving[np.flatnonzero(qty > 0), land[qty > 0]] += qty[qty > 0]
        stock, lost_today = _serve_day(stock + arriving[:, day], demand[:, day])
        lost += lost_today
        holding += float(e.holding @ stock)
    return placed, _outcome(e, config, placed, demand, lost, holding, stock)


def _serve_day(available: np.ndarray, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lost-sales day: closing stock and units lost per SKU."""
    return np.maximum(available - demand, 0.0), np.maximum(demand - available, 0.0)


def _outcome(e, config: PlanConfig, placed: np.ndarray, demand: np.ndarray, lost: np.ndarray, holding: float, closing: np.ndarray) -> Outcome:
    total = demand.sum()
    cost = float(e.cost @ placed.sum(axis=1)) + holding + float(e.lost_sale @ lost) + config.order_cost * int((placed > 0).sum()) - float(e.cost @ closing)
    return Outcome(fill_rate=float(1 - lost.sum() / total) if total > 0 else 1.0, cost=cost, lost_units=float(lost.sum()), order_lines=int((placed > 0).sum()))
