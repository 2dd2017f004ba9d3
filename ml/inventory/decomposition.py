"""Every SKU of a warehouse solved alone: only budget and capacity link the SKUs, so the sum of the per-SKU
optima bounds the linked plan from below, and when their combined orders fit the budget and the capacity they
are the plan."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import numpy as np
import pulp

from ml.inventory.formulation import Economics, PlanConfig, WarehouseProblem, build_model, economics, lot_for_lot, solution_arrays, solve
from ml.parallel import process_pool, process_workers


@dataclass
class PerSku:
    solution: tuple[np.ndarray, np.ndarray, np.ndarray]  # qty, inv, short [sku, day]
    upper: float  # the combined plan's objective
    lower: float  # sum of the per-SKU dual bounds: a lower bound for the linked problem too

    def fits(self, problem: WarehouseProblem, config: PlanConfig, e: Economics) -> bool:
        qty, inv, short = self.solution
        within_budget = config.budget is None or float(e.cost @ qty.sum(axis=1)) <= config.budget + 1e-6
        peak = (inv + problem.p50 - short).sum(axis=0)
        return within_budget and bool((peak <= problem.capacity_units + 1e-6).all())


def solve_per_sku(problem: WarehouseProblem, config: PlanConfig) -> PerSku | None:
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
        with process_pool(workers) as pool:
            results = list(pool.map(_solve_alone, jobs, chunksize=max(1, n // (8 * workers))))
    else:
        results = [_solve_alone(job) for job in jobs]
    if any(r is None for r in results):
        return None  # the linked model will say why
    qty, inv, short = (np.vstack([r[k] for r in results]) for k in range(3))
    return PerSku((qty, inv, short), upper=sum(r[3] for r in results), lower=sum(r[4] for r in results))


def _solve_alone(job: tuple[WarehouseProblem, PlanConfig, float]):
    """One SKU's MILP: (qty, inv, short) rows, its objective and its dual bound; None without a plan.
    Past the warehouse's deadline the lot-for-lot start is taken unsolved, with the trivial bound 0 (every
    objective coefficient is >= 0), so an exhausted time limit shows as a wide gap, never as a proof."""
    sku, config, deadline = job
    e = economics(sku, config)
    model, v = build_model(sku, config, e, elastic=False)
    start = lot_for_lot(sku, e)
    if time.time() >= deadline:
        for var in model.variables():
            var.varValue = start.get(var.name, 0.0)
        return (*solution_arrays(v, e, 1, sku.horizon), float(pulp.value(model.objective) or 0.0), 0.0)
    _, status, _ = solve(model, replace(config, time_limit_s=min(config.time_limit_s, deadline - time.time())), start)
    if status in ("infeasible", "no_solution"):
        return None
    objective = float(pulp.value(model.objective) or 0.0)
    bound = model.solverModel.getInfo().mip_dual_bound
    return (*solution_arrays(v, e, 1, sku.horizon), objective, float(bound) if np.isfinite(bound) else 0.0)
