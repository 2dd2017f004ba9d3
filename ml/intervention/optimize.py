"""The action plan: at most one action per customer, maximising expected incremental profit under a total
budget, per-action caps and contact fatigue, solved as a MILP with PuLP (HiGHS, CBC as fallback).

Also the targeting rules the plan is measured against (highest propensity first, random), so every policy is
judged with the same budget and the same caps."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pulp

from ml import milp
from ml.errors import ConfigError

log = logging.getLogger(__name__)

NONE = -1
"""Choice of a customer who gets no action."""


@dataclass(frozen=True)
class Limits:
    budget: float  # total expected spend (discount redeemed + contact cost) allowed
    caps: tuple[int | None, ...]  # per action: most customers who may get it (None: no cap)
    segment_cap: int | None = None  # most customers given an action in each group of ``groups`` (None: no cap)

    def __post_init__(self):
        if self.budget < 0:
            raise ConfigError(f"intervention budget must be >= 0, got {self.budget}")
        if any(c is not None and c < 0 for c in self.caps):
            raise ConfigError(f"intervention caps must be >= 0 or null, got {list(self.caps)}")
        if self.segment_cap is not None and self.segment_cap < 0:
            raise ConfigError(f"intervention segment_cap must be >= 0 or null, got {self.segment_cap}")


@dataclass(frozen=True)
class Assignment:
    choice: np.ndarray  # per customer: action index, or NONE
    status: str
    gap: float | None
    solver: str
    seconds: float
    milp_pairs: int = 0  # (customer, action) pairs left for the MILP after the bound pruned the rest

    def totals(self, profit: np.ndarray, spend: np.ndarray) -> dict:
        """Sum of ``profit`` and ``spend`` (customers x actions) over the chosen actions, and how many got each."""
        rows = np.flatnonzero(self.choice != NONE)
        cols = self.choice[rows]
        return {
            "profit": float(profit[rows, cols].sum()),
            "spend": float(spend[rows, cols].sum()),
            "customers": int(rows.size),
            "per_action": np.bincount(cols, minlength=profit.shape[1]).tolist(),
        }


def _check(profit: np.ndarray, spend: np.ndarray, limits: Limits, eligible: np.ndarray) -> None:
    if profit.shape != spend.shape or profit.shape[0] != eligible.shape[0] or profit.shape[1] != len(limits.caps):
        raise ConfigError(f"plan inputs disagree: profit {profit.shape}, spend {spend.shape}, eligible {eligible.shape}, {len(limits.caps)} caps")
    if (spend < 0).any():
        raise ConfigError("an action's expected spend is negative; check the discounts and the contact cost")


@dataclass(frozen=True)
class Pairs:
    """The candidate (customer, action) pairs: a customer row, an action column, their profit and spend, and the
    customer's group when a group cap applies."""

    rows: np.ndarray
    cols: np.ndarray
    profit: np.ndarray
    spend: np.ndarray
    group: np.ndarray | None

    def subset(self, keep: np.ndarray) -> Pairs:
        return Pairs(self.rows[keep], self.cols[keep], self.profit[keep], self.spend[keep], None if self.group is None else self.group[keep])


@dataclass(frozen=True)
class PlanModel:
    problem: pulp.LpProblem
    x: list[pulp.LpVariable]
    caps: dict[int, str]  # action -> name of its cap's constraint (only caps that can bind)
    groups: dict[object, str]  # group label -> name of its cap's constraint


def plan_model(pairs: Pairs, limits: Limits) -> PlanModel:
    """The plan as a PuLP model: maximise profit; budget, action caps, group caps, one action per customer."""
    model = pulp.LpProblem("intervention_plan", pulp.LpMaximize)
    x = [model.add_variable(f"x_{i}", cat="Binary") for i in range(pairs.rows.size)]
    model += pulp.LpAffineExpression(zip(x, pairs.profit.tolist(), strict=True))
    model += pulp.LpAffineExpression(zip(x, pairs.spend.tolist(), strict=True)) <= limits.budget, "budget"
    caps, groups = {}, {}
    for a, cap in enumerate(limits.caps):
        if cap is not None and (pairs.cols == a).sum() > cap:
            caps[a] = f"cap_{a}"
            model += pulp.lpSum(x[k] for k in np.flatnonzero(pairs.cols == a)) <= cap, caps[a]
    if pairs.group is not None and limits.segment_cap is not None:
        for index, label in enumerate(np.unique(pairs.group)):
            members = np.flatnonzero(pairs.group == label)
            if members.size > limits.segment_cap:
                groups[label] = f"segment_cap_{index}"
                model += pulp.lpSum(x[k] for k in members) <= limits.segment_cap, groups[label]
    order = np.argsort(pairs.rows, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pairs.rows[order]) != 0])
    for members in np.split(order, starts[1:]):
        if members.size > 1:
            model += pulp.lpSum(x[k] for k in members) <= 1, f"one_{pairs.rows[members[0]]}"
    return PlanModel(model, x, caps, groups)


def candidate_pairs(profit: np.ndarray, spend: np.ndarray, limits: Limits, eligible: np.ndarray, groups: np.ndarray | None = None) -> Pairs:
    """The (customer, action) pairs a plan may choose: eligible customers, positive expected profit (a pair that
    loses money never helps the objective), with each customer's group when a group cap applies."""
    rows, cols = np.nonzero((profit > 0) & eligible[:, None])
    group = groups[rows] if limits.segment_cap is not None and groups is not None else None
    return Pairs(rows, cols, profit[rows, cols], spend[rows, cols], group)


def _best_per_customer(rows: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per customer row, the largest ``value`` among its pairs, floored at 0 (choosing nothing)."""
    best = np.zeros(int(rows.max()) + 1)
    np.maximum.at(best, rows, value)
    return best


def priced_bound(pairs: Pairs, limits: Limits, prices: dict[str, float], model: PlanModel) -> tuple[np.ndarray, float]:
    """Each pair's profit less the prices of the shared limits it uses (budget per unit of spend, its action's
    cap, its group's cap), and the Lagrangian upper bound these prices give: the prices times the limits plus
    each customer's best priced pair (or nothing). Any prices >= 0 give a valid bound; the LP's duals the best."""
    budget = prices.get("budget", 0.0)
    action_price = np.array([prices.get(model.caps.get(a, ""), 0.0) for a in range(len(limits.caps))])
    priced = pairs.profit - budget * pairs.spend - action_price[pairs.cols]
    bound = budget * limits.budget + sum(action_price[a] * (cap or 0) for a, cap in enumerate(limits.caps))
    if pairs.group is not None and model.groups:
        group_price = {label: prices.get(name, 0.0) for label, name in model.groups.items()}
        priced = priced - np.array([group_price.get(label, 0.0) for label in pairs.group])
        bound += sum(group_price.values()) * (limits.segment_cap or 0)
    return priced, bound + float(_best_per_customer(pairs.rows, priced).sum())


def greedy(rows: np.ndarray, cols: np.ndarray, priority: np.ndarray, spend: np.ndarray, limits: Limits, group: np.ndarray | None) -> np.ndarray:
    """A feasible plan (a mask over pairs): pairs in descending ``priority``, each taken when its customer has
    none yet and it fits the budget, its action's cap and its group's cap."""
    taken = np.zeros(rows.size, dtype=bool)
    served: set[int] = set()
    per_action = np.zeros(len(limits.caps), dtype=np.int64)
    per_group: dict[object, int] = {}
    left = limits.budget
    for k in np.argsort(-priority, kind="stable"):
        customer, action = int(rows[k]), int(cols[k])
        cap = limits.caps[action]
        if customer in served or spend[k] > left or (cap is not None and per_action[action] >= cap):
            continue
        if group is not None and per_group.get(group[k], 0) >= (limits.segment_cap or 0):
            continue
        taken[k] = True
        served.add(customer)
        per_action[action] += 1
        left -= spend[k]
        if group is not None:
            per_group[group[k]] = per_group.get(group[k], 0) + 1
    return taken


def assign(
    profit: np.ndarray,
    spend: np.ndarray,
    limits: Limits,
    eligible: np.ndarray,
    time_limit_s: float = 60.0,
    gap: float = 1e-3,
    solver: str = "highs",
    groups: np.ndarray | None = None,
) -> Assignment:
    """Choose at most one action per eligible customer maximising total ``profit`` with total ``spend`` within
    the budget, each action within its cap and each of ``groups`` (a label per customer, such as the segment)
    within ``limits.segment_cap``. Only (customer, action) pairs with positive expected profit are
    candidates: a pair that loses money never helps the objective.

    Before the MILP, the LP relaxation prices the shared limits; a greedy plan by priced profit is the solver's
    starting solution, and pairs whose reduced cost shows they cannot be part of any better plan are dropped
    (reduced-cost fixing). HiGHS's presolve alone stalled for minutes on the 180k pairs of a large shop; with a
    start, the time limit returns the best plan found rather than none."""
    _check(profit, spend, limits, eligible)
    t0 = time.perf_counter()
    pairs = candidate_pairs(profit, spend, limits, eligible, groups)
    choice = np.full(profit.shape[0], NONE)
    if pairs.rows.size == 0:
        return Assignment(choice, "optimal", 0.0, "none", time.perf_counter() - t0)
    full = plan_model(pairs, limits)
    priced, bound = priced_bound(pairs, limits, milp.relaxation_prices(full.problem, solver, time_limit_s), full)
    start = greedy(pairs.rows, pairs.cols, priced, pairs.spend, limits, pairs.group)
    incumbent = float(pairs.profit[start].sum())
    reduced = priced - _best_per_customer(pairs.rows, priced)[pairs.rows]
    keep = np.flatnonzero(bound + reduced >= incumbent - 1e-9 * (1.0 + abs(bound)))
    kept = pairs.subset(keep)
    model = plan_model(kept, limits)
    used, status, found_gap = milp.solve(model.problem, solver, time_limit_s, gap, start={f"x_{k}": 1.0 for k in np.flatnonzero(start[keep])})
    if status in ("infeasible", "no_solution"):
        # The greedy start is feasible (spend >= 0, caps >= 0), so this is a solver failure, not the data's.
        raise ConfigError(f"intervention plan: {used} returned {status} on {keep.size} candidate pairs within {time_limit_s}s; raise time_limit_s")
    rows, cols, x = kept.rows, kept.cols, model.x
    chosen = np.array([v.varValue or 0.0 for v in x]) > 0.5
    choice[rows[chosen]] = cols[chosen]
    seconds = time.perf_counter() - t0
    log.info(
        "intervention plan: %d of %d candidate pairs chosen (%d left by the LP bound %.2f and the greedy plan's %.2f), %s (gap %s) by %s in %.1fs",
        int(chosen.sum()),
        pairs.rows.size,
        rows.size,
        bound,
        incumbent,
        status,
        "n/a" if found_gap is None else f"{found_gap:.2e}",
        used,
        seconds,
    )
    return Assignment(choice, status, found_gap, used, seconds, rows.size)


def ranked(order: np.ndarray, action: np.ndarray, spend: np.ndarray, limits: Limits, eligible: np.ndarray, name: str) -> Assignment:
    """A targeting rule: walk customers in ``order`` giving each ``action[customer]`` while it fits in the budget
    and its cap (the same limits the optimised plan obeys)."""
    t0 = time.perf_counter()
    order = order[eligible[order]]
    cost = spend[order, action[order]]
    within_budget = np.cumsum(cost) <= limits.budget
    choice = np.full(spend.shape[0], NONE)
    taken = order[within_budget]
    picked = action[taken]
    for a, cap in enumerate(limits.caps):
        if cap is not None:
            mine = np.flatnonzero(picked == a)
            picked[mine[cap:]] = NONE
    choice[taken] = picked
    return Assignment(choice, "rule", None, name, time.perf_counter() - t0)
