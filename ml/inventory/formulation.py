"""The replenishment plan of one warehouse as a mixed-integer program (PuLP; HiGHS, CBC as fallback).

Per SKU i and day t of the horizon (day 0 = the first forecast day):

    orders    q[i,t] = case_pack_i * cases[i,t]  (cases integer), placed on day t, arriving on day t + lead_i
    MOQ       moq_i * y[i,t] <= q[i,t] <= cap_i * y[i,t]   (y binary: an order line is placed)
    flow      inv[i,t] = inv[i,t-1] + arrivals[i,t] - p50[i,t] + short[i,t]   (lost sales; on_order lands on day 0)
    safety    inv[i,t] >= safety_stock_i  for t >= lead_i  (earlier days cannot be helped by a new order)
    budget    sum unit_cost_i * q[i,t] <= budget
    capacity  sum_i (inv[i,t] + p50[i,t] - short[i,t]) <= capacity_units  (the day's peak, after arrivals)

minimising holding + lost-sale + per-line ordering cost. With the stock left at the end valued at cost (it sells
after the horizon), purchases less that stock equal a constant (cost of all demand less opening stock) minus the
cost of the units lost; so the objective keeps only the controllable part and a lost unit costs its price (x a
goodwill factor) less its unit cost. Dropping the constant matters: the MIP gap is relative to the objective,
and with total purchases in it a 1% gap would accept plans whose controllable cost is far from the best. Safety stock comes from the forecast's
P10-P90 spread at the service-level target (``policy.safety_stock``).

The other modules solve it: ``model`` (the warehouse's plan), ``decomposition`` (every SKU alone, in worker
processes) and ``diagnosis`` (an elastic copy that says why no plan exists).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pulp

from ml import milp
from ml.errors import ConfigError
from ml.inventory import policy

SKU_COLUMNS = ("product_id", "unit_cost", "price", "case_pack", "moq", "lead_time_days", "on_hand", "on_order")


@dataclass(frozen=True)
class PlanConfig:
    service_level: float = 0.95  # cycle service level behind the safety stock
    budget: float | None = None  # purchase budget per warehouse over the horizon; None: unlimited
    holding_rate: float = 0.25  # per year, as a share of unit cost
    lost_sale_cost: float = 1.0  # per unit short, as a multiple of the price (lost revenue; > 1 adds goodwill)
    order_cost: float = 5.0  # fixed cost of one order line
    time_limit_s: float = 120.0
    gap: float = 0.01  # relative MIP gap at which the solver may stop
    solver: str = "highs"  # highs | cbc (highs falls back to cbc when highspy is missing)
    threads: int | None = None

    def __post_init__(self):
        if not 0.5 <= self.service_level < 1:
            raise ConfigError(f"service_level must be in [0.5, 1), got {self.service_level}")
        if self.budget is not None and self.budget < 0:
            raise ConfigError(f"budget must be >= 0, got {self.budget}")
        if self.solver not in milp.SOLVERS:
            raise ConfigError(f"solver must be 'highs' or 'cbc', got {self.solver!r}")
        if self.time_limit_s <= 0:
            raise ConfigError(f"time_limit_s must be positive, got {self.time_limit_s}")


@dataclass
class WarehouseProblem:
    """One warehouse's planning inputs: SKU master + stock (``SKU_COLUMNS``) and the forecast quantiles
    ``p10/p50/p90[sku, day]`` aligned with ``skus`` rows and ``days``."""

    warehouse_id: str
    skus: pd.DataFrame
    days: pd.DatetimeIndex
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    capacity_units: float

    def __post_init__(self):
        missing = [c for c in SKU_COLUMNS if c not in self.skus.columns]
        if missing:
            raise ConfigError(f"warehouse {self.warehouse_id}: SKU table lacks columns {missing}")
        shape = (len(self.skus), len(self.days))
        for name in ("p10", "p50", "p90"):
            if getattr(self, name).shape != shape:
                raise ConfigError(f"warehouse {self.warehouse_id}: {name} has shape {getattr(self, name).shape}, expected {shape}")

    @property
    def horizon(self) -> int:
        return len(self.days)


@dataclass(frozen=True)
class Economics:
    safety: np.ndarray  # units per SKU
    holding: np.ndarray  # per unit-day
    lost_sale: np.ndarray  # per unit
    big_m: np.ndarray  # [sku, order day]: the most one order line may usefully hold, units
    lead: np.ndarray
    case: np.ndarray
    moq: np.ndarray
    cost: np.ndarray
    start: np.ndarray  # stock available on day 0 (on hand + on order)


def economics(problem: WarehouseProblem, config: PlanConfig) -> Economics:
    s = problem.skus
    cost, price = s["unit_cost"].to_numpy(float), s["price"].to_numpy(float)
    case, moq = s["case_pack"].to_numpy(int), s["moq"].to_numpy(int)
    lead = s["lead_time_days"].to_numpy(int)
    safety = policy.safety_stock(policy.daily_sd(problem.p10, problem.p90), lead, config.service_level)
    # the most a line ordered on day t can usefully hold: demand from its arrival to the horizon's end plus
    # the safety stock, rounded up to cases (and at least the MOQ); a tight bound keeps the LP relaxation strong
    remaining = np.cumsum(problem.p90[:, ::-1], axis=1)[:, ::-1]
    arrival = np.minimum(np.arange(problem.horizon)[None, :] + lead[:, None], problem.horizon - 1)
    useful = np.take_along_axis(remaining, arrival, axis=1) + safety[:, None]
    big_m = np.maximum(np.ceil(np.maximum(useful, moq[:, None]) / case[:, None]) * case[:, None], case[:, None])
    return Economics(
        safety=safety,
        holding=config.holding_rate * cost / 365.0,
        lost_sale=config.lost_sale_cost * price,
        big_m=big_m,
        lead=lead,
        case=case,
        moq=moq,
        cost=cost,
        start=(s["on_hand"].to_numpy(float) + s["on_order"].to_numpy(float)),
    )


def order_days(lead: int, horizon: int) -> range:
    """Days on which an order still arrives inside the horizon."""
    return range(max(horizon - lead, 0))


def build_model(problem: WarehouseProblem, config: PlanConfig, e: Economics, elastic: bool):
    """The MILP, or (elastic) its phase-one copy whose budget, capacity and safety rows take priced slack."""
    n, horizon, demand = len(problem.skus), problem.horizon, problem.p50
    model = pulp.LpProblem(f"replenishment_{problem.warehouse_id}", pulp.LpMinimize)
    cases, line, inv, short, slack_safety = {}, {}, {}, {}, {}
    for i in range(n):
        for t in order_days(e.lead[i], horizon):
            cases[i, t] = model.add_variable(f"cases_{i}_{t}", lowBound=0, cat="Integer")
            line[i, t] = model.add_variable(f"line_{i}_{t}", cat="Binary")
            qty = e.case[i] * cases[i, t]
            model += qty >= e.moq[i] * line[i, t], f"moq_{i}_{t}"
            model += qty <= float(e.big_m[i, t]) * line[i, t], f"line_cap_{i}_{t}"
        for t in range(horizon):
            inv[i, t] = model.add_variable(f"inv_{i}_{t}", lowBound=0)
            short[i, t] = model.add_variable(f"short_{i}_{t}", lowBound=0, upBound=float(demand[i, t]))
            arriving = e.case[i] * cases[i, t - e.lead[i]] if (i, t - e.lead[i]) in cases else 0
            before = inv[i, t - 1] if t else float(e.start[i])
            model += inv[i, t] == before + arriving - float(demand[i, t]) + short[i, t], f"flow_{i}_{t}"
            if t >= e.lead[i] and e.safety[i] > 0:
                slack = slack_safety[i, t] = model.add_variable(f"slack_safety_{i}_{t}", lowBound=0) if elastic else 0
                model += inv[i, t] + slack >= float(e.safety[i]), f"safety_{i}_{t}"
    purchase = pulp.lpSum(float(e.cost[i] * e.case[i]) * x for (i, _), x in cases.items())
    slack_budget = model.add_variable("slack_budget", lowBound=0) if elastic else 0
    if config.budget is not None:
        model += purchase <= config.budget + slack_budget, "budget"
    slack_capacity = {}
    for t in range(horizon if np.isfinite(problem.capacity_units) else 0):
        slack_capacity[t] = model.add_variable(f"slack_capacity_{t}", lowBound=0) if elastic else 0
        peak = pulp.lpSum(inv[i, t] + float(demand[i, t]) - short[i, t] for i in range(n))
        model += peak <= problem.capacity_units + slack_capacity[t], f"capacity_{t}"
    if elastic:  # every violation priced in money, so the families are comparable
        mean_cost = float(e.cost.mean()) if n else 1.0
        model += slack_budget + mean_cost * pulp.lpSum(slack_capacity.values()) + pulp.lpSum(float(e.cost[i]) * s for (i, _), s in slack_safety.items())
    else:
        model += (
            pulp.lpSum(float(e.holding[i]) * x for (i, _), x in inv.items())
            + pulp.lpSum(float(max(e.lost_sale[i] - e.cost[i], 0.0)) * x for (i, _), x in short.items())
            + config.order_cost * pulp.lpSum(line.values())
        )
    handles = {
        "cases": cases,
        "line": line,
        "inv": inv,
        "short": short,
        "slack_budget": slack_budget,
        "slack_capacity": slack_capacity,
        "slack_safety": slack_safety,
    }
    return model, handles


def lot_for_lot(problem: WarehouseProblem, e: Economics) -> dict[str, float]:
    """A feasible-by-construction start (variable name -> value): each day from the lead time on, the order
    placed ``lead`` days earlier tops the stock up to the safety stock after the day's P50 demand, in whole
    cases and at least the MOQ. It ignores budget and capacity; the solver drops it when it breaks them.

    HiGHS's own primal heuristics find no solution to 200 SKUs in a minute; from this start it improves at once."""
    n, horizon, demand = len(problem.skus), problem.horizon, problem.p50
    min_line = np.ceil(e.moq / e.case) * e.case
    arriving = np.zeros((n, horizon))
    stock = e.start.astype(float).copy()
    start: dict[str, float] = {}
    for day in range(horizon):
        orders = np.flatnonzero(day >= e.lead)
        need = e.safety[orders] + demand[orders, day] - stock[orders]
        for i, units in zip(orders[need > 0], need[need > 0], strict=True):
            qty = max(np.ceil(units / e.case[i]) * e.case[i], min_line[i])
            placed = day - e.lead[i]
            arriving[i, day] += qty
            start[f"cases_{i}_{placed}"], start[f"line_{i}_{placed}"] = qty / e.case[i], 1.0
        available = stock + arriving[:, day]
        stock = np.maximum(available - demand[:, day], 0.0)
        for i in range(n):
            start[f"inv_{i}_{day}"] = stock[i]
            start[f"short_{i}_{day}"] = max(demand[i, day] - available[i], 0.0)
    return start


@contextmanager
def as_lp(model: pulp.LpProblem, relax: bool = True):
    """Inside the block, every variable of the model is continuous (its LP relaxation); restored after."""
    categories = [(var, var.cat) for var in model.variables()] if relax else []
    for var, _ in categories:
        var.cat = pulp.LpContinuous
    try:
        yield model
    finally:
        for var, category in categories:
            var.cat = category


def solve(model: pulp.LpProblem, config: PlanConfig, start: dict[str, float] | None = None) -> tuple[str, str, float | None]:
    return milp.solve(model, config.solver, config.time_limit_s, config.gap, config.threads, start)


def solution_arrays(v: dict, e: Economics, n: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The solved order units, closing stock and lost sales as [sku, day] arrays."""
    qty = np.zeros((n, horizon))
    for (i, t), x in v["cases"].items():
        qty[i, t] = round(pulp.value(x) or 0.0) * int(e.case[i])
    inv = np.array([[pulp.value(v["inv"][i, t]) or 0.0 for t in range(horizon)] for i in range(n)])
    short = np.array([[pulp.value(v["short"][i, t]) or 0.0 for t in range(horizon)] for i in range(n)])
    return qty, inv.reshape(n, horizon), short.reshape(n, horizon)
