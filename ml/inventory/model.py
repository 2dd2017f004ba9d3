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

The solver status is read from the solver, not from PuLP's summary (PuLP reports a HiGHS time-limit stop as
"Optimal"): ``optimal`` (gap ~0), ``within_gap`` (stopped at the gap tolerance), ``time_limit`` (stopped by the
clock, gap reported). An infeasible model, or none found in time, raises ``PlanError`` with a diagnosis from an
elastic copy of the model: which constraint families must be violated, by how much, and for which SKUs.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pulp
from scipy import stats

from ml import milp
from ml.errors import ConfigError, PlanError
from ml.inventory import policy
from ml.parallel import process_workers

log = logging.getLogger(__name__)

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


@dataclass
class Plan:
    warehouse_id: str
    orders: pd.DataFrame  # product_id, order_date, arrival_date, qty
    skus: pd.DataFrame  # product_id, safety_stock, reorder_point, expected_fill_rate, expected_cost
    status: str  # optimal | within_gap | time_limit
    mip_gap: float | None  # None when the solver does not report it (CBC)
    objective: float
    solver: str
    seconds: float
    advice: str | None = None  # what a planner can do about a plan stopped short of the gap


def _time_limit_advice(status: str, gap: float | None, config: PlanConfig) -> str | None:
    if status in ("optimal", "within_gap"):
        return None
    proven = "no gap proven (CBC reports none)" if gap is None else f"a {gap:.1%} gap proven"
    return (
        f"stopped by the {config.time_limit_s:g} s time limit with {proven}, above the {config.gap:.1%} asked for: "
        "the best plan found is used; raise time_limit_s (or the gap) to tighten it"
    )


def plan_warehouse(problem: WarehouseProblem, config: PlanConfig = PlanConfig()) -> Plan:
    """Solve the warehouse's plan; raise PlanError with a diagnosis when no plan exists (or none in time).

    Only budget and capacity link the SKUs. With HiGHS, every SKU is first solved alone (a small MILP each):
    the sum of their bounds is a valid lower bound on the whole plan, and when their combined orders fit the
    budget and the capacity they are the plan (optimal up to the per-SKU gaps). Otherwise the full MILP is
    solved, its gap measured against the better of the two bounds. One MILP over 1,000 SKUs stalled at a 6.8%
    gap after 300 s; per SKU the same plan is proven within a fraction of that. Before the linked MILP (before
    the per-SKU pass when there is a budget), an infeasible LP relaxation proves that no plan exists."""
    t0 = time.perf_counter()
    econ = economics(problem, config)
    # a budget is the usual reason no plan exists: proving it first spares the per-SKU pass
    linked = _linked_model(problem, config, econ, spent_s=0.0) if config.budget is not None else None
    separate = _solve_per_sku(problem, config) if config.solver == "highs" and pulp.HiGHS().available() else None
    lower = separate.lower if separate else None
    if separate and separate.fits(problem, config, econ):
        solver_name, solution, objective = "highs (per SKU)", separate.solution, separate.upper
        gap = max(separate.upper - separate.lower, 0.0) / max(abs(separate.upper), 1e-9)
        status = "optimal" if gap <= 1e-6 else "within_gap" if gap <= config.gap + 1e-9 else "time_limit"
    else:
        model, v = linked or _linked_model(problem, config, econ, spent_s=time.perf_counter() - t0)
        left = max(config.time_limit_s - (time.perf_counter() - t0), 1.0)  # the per-SKU pass spent part of the limit
        solver_name, status, gap = _solve(model, replace(config, time_limit_s=left), lot_for_lot(problem, econ))
        if status in ("infeasible", "no_solution"):
            what = "is infeasible" if status == "infeasible" else f"found no feasible plan within {config.time_limit_s:g} s"
            _raise_infeasible(problem, config, what, status)
        solution, objective = _values(v, econ, len(problem.skus), problem.horizon), pulp.value(model.objective)
        if lower is not None and objective:
            gap = min(gap if gap is not None else np.inf, max(objective - lower, 0.0) / abs(objective))
            gap = None if not np.isfinite(gap) else gap
    seconds = time.perf_counter() - t0
    log.info(
        "warehouse %s: %d SKUs x %d days, %s (gap %s) in %.1fs with %s",
        problem.warehouse_id,
        len(problem.skus),
        problem.horizon,
        status,
        "n/a" if gap is None else f"{gap:.2%}",
        seconds,
        solver_name,
    )
    plan = _read_plan(problem, config, econ, solution, solver_name, status, gap, float(objective), seconds)
    if plan.advice:
        log.warning("warehouse %s: %s", problem.warehouse_id, plan.advice)
    return plan


def _linked_model(problem: WarehouseProblem, config: PlanConfig, e: Economics, spent_s: float):
    """The linked MILP (model, variables), after checking its LP relaxation (fractional cases and order lines):
    if even that is infeasible, raise PlanError('infeasible'), a proof in seconds that no plan exists where the
    MILP could spend its whole time limit finding none. The check gets at least 30 s whatever the limit has left:
    a proof is worth more than the limit's last second."""
    model, v = _build(problem, config, e, elastic=False)
    with _as_lp(model):
        _, status, _ = _solve(model, replace(config, time_limit_s=max(config.time_limit_s - spent_s, 30.0)))
    if status == "infeasible":
        _raise_infeasible(problem, config, "is infeasible (even its LP relaxation is)", "infeasible")
    return model, v


@contextmanager
def _as_lp(model: pulp.LpProblem, relax: bool = True):
    """Inside the block, every variable of the model is continuous (its LP relaxation); restored after."""
    categories = [(var, var.cat) for var in model.variables()] if relax else []
    for var, _ in categories:
        var.cat = pulp.LpContinuous
    try:
        yield model
    finally:
        for var, category in categories:
            var.cat = category


def _raise_infeasible(problem: WarehouseProblem, config: PlanConfig, what: str, status: str):
    diagnosis = diagnose(problem, config)
    raise PlanError(f"warehouse {problem.warehouse_id}: the replenishment MILP {what}; {diagnosis['message']}", status=status, diagnosis=diagnosis)


@dataclass
class _PerSku:
    solution: tuple[np.ndarray, np.ndarray, np.ndarray]  # qty, inv, short [sku, day]
    upper: float  # the combined plan's objective
    lower: float  # sum of the per-SKU dual bounds: a lower bound for the linked problem too

    def fits(self, problem: WarehouseProblem, config: PlanConfig, e: Economics) -> bool:
        qty, inv, short = self.solution
        within_budget = config.budget is None or float(e.cost @ qty.sum(axis=1)) <= config.budget + 1e-6
        peak = (inv + problem.p50 - short).sum(axis=0)
        return within_budget and bool((peak <= problem.capacity_units + 1e-6).all())


def _solve_per_sku(problem: WarehouseProblem, config: PlanConfig) -> _PerSku | None:
    """Every SKU's own optimum (to the configured gap, within its share of the time limit) without the budget
    and capacity rows, SKUs spread over worker processes (HiGHS); None if one has no plan alone."""
    n = len(problem.skus)
    workers = process_workers(min(config.threads or os.cpu_count() or 1, max(n // 50, 1)), "per-SKU pass")
    # every SKU within the gap keeps the sum within it (sum of upper - lower <= gap x sum of upper); a SKU stopped
    # by its share of the clock (a hundredth of the limit, 2 s at most; most need a fraction of a second) can
    # widen the sum's gap, which the status then reports
    share = min(2.0, max(0.05, config.time_limit_s / 100))
    alone = replace(config, budget=None, threads=1, time_limit_s=share)
    deadline = time.time() + config.time_limit_s  # wall clock: comparable across the worker processes
    jobs = [
        (
            WarehouseProblem(
                problem.warehouse_id,
                problem.skus.iloc[[i]].reset_index(drop=True),
                problem.days,
                problem.p10[[i]],
                problem.p50[[i]],
                problem.p90[[i]],
                capacity_units=np.inf,
            ),
            alone,
            deadline,
        )
        for i in range(n)
    ]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_solve_alone, jobs, chunksize=max(1, n // (8 * workers))))
    else:
        results = [_solve_alone(job) for job in jobs]
    if any(r is None for r in results):
        return None  # the linked model will say why
    solution = tuple(np.vstack([r[k] for r in results]) for k in range(3))
    return _PerSku(solution, upper=sum(r[3] for r in results), lower=sum(r[4] for r in results))


def _solve_alone(job: tuple[WarehouseProblem, PlanConfig, float]):
    """One SKU's MILP: (qty, inv, short) rows, its objective and its dual bound; None without a plan.
    Past the warehouse's deadline the lot-for-lot start is taken unsolved, with the trivial bound 0 (every
    objective coefficient is >= 0), so an exhausted time limit shows as a wide gap, never as a proof."""
    sku, config, deadline = job
    e = economics(sku, config)
    model, v = _build(sku, config, e, elastic=False)
    start = lot_for_lot(sku, e)
    if time.time() >= deadline:
        for var in model.variables():
            var.varValue = start.get(var.name, 0.0)
        return (*_values(v, e, 1, sku.horizon), float(pulp.value(model.objective) or 0.0), 0.0)
    _, status, _ = _solve(model, replace(config, time_limit_s=min(config.time_limit_s, deadline - time.time())), start)
    if status in ("infeasible", "no_solution"):
        return None
    objective = float(pulp.value(model.objective) or 0.0)
    bound = model.solverModel.getInfo().mip_dual_bound
    return (*_values(v, e, 1, sku.horizon), objective, float(bound) if np.isfinite(bound) else 0.0)


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


def _build(problem: WarehouseProblem, config: PlanConfig, e: Economics, elastic: bool):
    """The MILP, or (elastic) its phase-one copy whose budget, capacity and safety rows take priced slack."""
    n, horizon, demand = len(problem.skus), problem.horizon, problem.p50
    model = pulp.LpProblem(f"replenishment_{problem.warehouse_id}", pulp.LpMinimize)
    cases, line, inv, short, slack_safety = {}, {}, {}, {}, {}
    for i in range(n):
        for t in order_days(e.lead[i], horizon):
            cases[i, t] = pulp.LpVariable(f"cases_{i}_{t}", lowBound=0, cat="Integer")
            line[i, t] = pulp.LpVariable(f"line_{i}_{t}", cat="Binary")
            qty = e.case[i] * cases[i, t]
            model += qty >= e.moq[i] * line[i, t], f"moq_{i}_{t}"
            model += qty <= float(e.big_m[i, t]) * line[i, t], f"line_cap_{i}_{t}"
        for t in range(horizon):
            inv[i, t] = pulp.LpVariable(f"inv_{i}_{t}", lowBound=0)
            short[i, t] = pulp.LpVariable(f"short_{i}_{t}", lowBound=0, upBound=float(demand[i, t]))
            arriving = e.case[i] * cases[i, t - e.lead[i]] if (i, t - e.lead[i]) in cases else 0
            before = inv[i, t - 1] if t else float(e.start[i])
            model += inv[i, t] == before + arriving - float(demand[i, t]) + short[i, t], f"flow_{i}_{t}"
            if t >= e.lead[i] and e.safety[i] > 0:
                slack = slack_safety[i, t] = pulp.LpVariable(f"slack_safety_{i}_{t}", lowBound=0) if elastic else 0
                model += inv[i, t] + slack >= float(e.safety[i]), f"safety_{i}_{t}"
    purchase = pulp.lpSum(float(e.cost[i] * e.case[i]) * x for (i, _), x in cases.items())
    slack_budget = pulp.LpVariable("slack_budget", lowBound=0) if elastic else 0
    if config.budget is not None:
        model += purchase <= config.budget + slack_budget, "budget"
    slack_capacity = {}
    for t in range(horizon if np.isfinite(problem.capacity_units) else 0):
        slack_capacity[t] = pulp.LpVariable(f"slack_capacity_{t}", lowBound=0) if elastic else 0
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


def _solve(model: pulp.LpProblem, config: PlanConfig, start: dict[str, float] | None = None) -> tuple[str, str, float | None]:
    return milp.solve(model, config.solver, config.time_limit_s, config.gap, config.threads, start)


def diagnose(problem: WarehouseProblem, config: PlanConfig, relaxed: bool = False) -> dict:
    """Solve the elastic copy: the least-cost violation of budget, capacity and safety stock, as a message.
    ``relaxed`` solves its LP relaxation instead (seconds, the fallback when the elastic MILP finds nothing in
    time): its violations are the least any plan must make, lower bounds where cases and MOQs bind."""
    econ = economics(problem, config)
    model, v = _build(problem, config, econ, elastic=True)
    solver = replace(config, time_limit_s=min(max(config.time_limit_s, 30.0), 120.0), gap=0.01)
    with _as_lp(model, relax=relaxed):
        _, status, _ = _solve(model, solver)
    if status == "no_solution" and not relaxed:
        return diagnose(problem, config, relaxed=True)  # the least violation even fractional cases must make
    if status == "infeasible":
        return {
            "families": [],
            "message": "even with budget, capacity and safety stock relaxed no plan exists (check MOQ / case-pack against the order-line cap)",
        }
    if status == "no_solution":
        return {"families": [], "message": f"the diagnosis itself found no answer within {solver.time_limit_s:g} s"}
    ids = problem.skus["product_id"].astype(str).to_numpy()
    findings, parts = [], []
    over_budget = pulp.value(v["slack_budget"]) if config.budget is not None else 0.0
    if over_budget and over_budget > 1e-6:
        findings.append({"family": "budget", "amount": float(over_budget)})
        short_by = f"at least {over_budget:,.2f}" if relaxed else f"{over_budget:,.2f}"
        parts.append(
            f"budget: {config.budget:,.2f} is {short_by} short of what safety stock at service level "
            f"{config.service_level:.0%} costs (raise the budget or lower the service level)"
        )
    cap = {problem.days[t].date().isoformat(): float(pulp.value(s)) for t, s in v["slack_capacity"].items() if pulp.value(s) > 1e-6}
    if cap:
        worst = max(cap, key=cap.get)
        findings.append({"family": "capacity", "days": cap})
        parts.append(
            f"capacity: {problem.capacity_units:,.0f} units exceeded on {len(cap)} day(s), worst {worst} by "
            f"{cap[worst]:,.0f} (stock on hand + safety stock do not fit)"
        )
    short = {}
    for (i, _), s in v["slack_safety"].items():
        value = pulp.value(s) or 0.0
        if value > 0.01:
            short[ids[i]] = max(short.get(ids[i], 0.0), value)
    if short:
        top = sorted(short, key=short.get, reverse=True)
        findings.append({"family": "safety_stock", "skus": {k: short[k] for k in top}})
        sample = ", ".join(f"{k} ({short[k]:,.1f} units)" for k in top[:5])
        parts.append(f"safety_stock: {len(short)} SKU(s) cannot hold their safety stock, e.g. {sample}")
    message = "; ".join(parts) or "no single constraint family explains it"
    return {"families": findings, "message": message}


def _values(v: dict, e: Economics, n: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The solved order units, closing stock and lost sales as [sku, day] arrays."""
    qty = np.zeros((n, horizon))
    for (i, t), x in v["cases"].items():
        qty[i, t] = round(pulp.value(x) or 0.0) * int(e.case[i])
    inv = np.array([[pulp.value(v["inv"][i, t]) or 0.0 for t in range(horizon)] for i in range(n)])
    short = np.array([[pulp.value(v["short"][i, t]) or 0.0 for t in range(horizon)] for i in range(n)])
    return qty, inv.reshape(n, horizon), short.reshape(n, horizon)


def _read_plan(
    problem: WarehouseProblem, config: PlanConfig, e: Economics, solution: tuple, solver: str, status: str, gap: float | None, objective: float, seconds: float
) -> Plan:
    n, horizon = len(problem.skus), problem.horizon
    ids = problem.skus["product_id"].astype(str).to_numpy()
    qty, inv, short = solution
    sku, day = np.nonzero(qty > 0)
    orders = pd.DataFrame(
        {
            "product_id": ids[sku],
            "order_date": problem.days[day],
            "arrival_date": problem.days[day] + pd.to_timedelta(e.lead[sku], unit="D"),
            "qty": qty[sku, day],
        }
    )
    lines = (qty > 0).sum(axis=1)
    cost = e.cost * qty.sum(axis=1) + e.holding * inv.sum(axis=1) + e.lost_sale * short.sum(axis=1) + config.order_cost * lines
    # Silver-Pyke fill rate: the plan's own lost sales plus, per order cycle, the expected units short beyond
    # the safety stock (protection-period sd x normal loss at the service level's z)
    z = stats.norm.ppf(config.service_level)
    expected_short = short.sum(axis=1) + lines * (e.safety / z) * policy.normal_loss(z)
    demand = problem.p50.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = np.where(demand > 0, np.clip(1 - expected_short / demand, 0.0, 1.0), 1.0)
    lead_days = np.minimum(e.lead, horizon)
    lead_demand = np.array([problem.p50[i, : lead_days[i]].sum() for i in range(n)])
    skus = pd.DataFrame(
        {"product_id": ids, "safety_stock": e.safety, "reorder_point": lead_demand + e.safety, "expected_fill_rate": fill, "expected_cost": cost}
    )
    return Plan(problem.warehouse_id, orders, skus, status, gap, float(objective), solver, seconds, advice=_time_limit_advice(status, gap, config))
