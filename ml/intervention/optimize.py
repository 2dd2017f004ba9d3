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
    candidates: a pair that loses money never helps the objective."""
    _check(profit, spend, limits, eligible)
    t0 = time.perf_counter()
    rows, cols = np.nonzero((profit > 0) & eligible[:, None])
    choice = np.full(profit.shape[0], NONE)
    if rows.size == 0:
        return Assignment(choice, "optimal", 0.0, "none", time.perf_counter() - t0)
    x = [pulp.LpVariable(f"x_{i}", cat="Binary") for i in range(rows.size)]
    model = pulp.LpProblem("intervention_plan", pulp.LpMaximize)
    model += pulp.LpAffineExpression(zip(x, profit[rows, cols].tolist(), strict=True))
    model += pulp.LpAffineExpression(zip(x, spend[rows, cols].tolist(), strict=True)) <= limits.budget, "budget"
    for a, cap in enumerate(limits.caps):
        if cap is not None and (cols == a).sum() > cap:
            model += pulp.lpSum(x[k] for k in np.flatnonzero(cols == a)) <= cap, f"cap_{a}"
    if limits.segment_cap is not None and groups is not None:
        for index, group in enumerate(np.unique(groups[rows])):
            members = np.flatnonzero(groups[rows] == group)
            if members.size > limits.segment_cap:
                model += pulp.lpSum(x[k] for k in members) <= limits.segment_cap, f"segment_cap_{index}"
    order = np.argsort(rows, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(rows[order]) != 0])
    for group in np.split(order, starts[1:]):
        if group.size > 1:
            model += pulp.lpSum(x[k] for k in group) <= 1, f"one_{rows[group[0]]}"
    used, status, found_gap = milp.solve(model, solver, time_limit_s, gap)
    if status in ("infeasible", "no_solution"):
        # Choosing nothing is always feasible (spend >= 0, caps >= 0), so this is a solver failure, not the data's.
        raise ConfigError(f"intervention plan: {used} returned {status} on {rows.size} candidate pairs within {time_limit_s}s; raise time_limit_s")
    chosen = np.array([v.varValue or 0.0 for v in x]) > 0.5
    choice[rows[chosen]] = cols[chosen]
    seconds = time.perf_counter() - t0
    log.info(
        "intervention plan: %d of %d candidate pairs chosen, %s (gap %s) by %s in %.1fs",
        int(chosen.sum()),
        rows.size,
        status,
        "n/a" if found_gap is None else f"{found_gap:.2e}",
        used,
        seconds,
    )
    return Assignment(choice, status, found_gap, used, seconds)


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
