"""Replenishment MILP at scale, its honest statuses, and the plan against a base-stock policy in simulation.

    python benchmarks/inventory_plan.py --skus 1000 --horizon 28 --out benchmarks/results/inventory_plan.json

One warehouse of ``--skus`` SKUs (seeded generator below: unit costs 1-50, margins 30-150%, case packs 1-24, MOQs
0-48, lead times 2-9 days, weekly demand profile, P10/P90 at 0.5x/1.6x P50) solved by HiGHS and by CBC (the
fallback) to a 1% gap under a time limit: status, gap, seconds, peak memory. Then the two cases a planner must be
told about (a 2-second limit at a zero gap tolerance, an unaffordable budget), and the HiGHS plan simulated
beside a base-stock policy on demand drawn from the forecast distribution (normal, matching P10/P90).
Goal: 1,000 SKUs x 28 days to <= 1% gap in <= 300 s on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import pandas as pd
import record

from ml.errors import PlanError
from ml.inventory import evaluate, policy
from ml.inventory.formulation import PlanConfig, WarehouseProblem
from ml.inventory.model import plan_warehouse


def generate(n_skus: int, horizon: int, seed: int = 0) -> WarehouseProblem:
    rng = np.random.default_rng(seed)
    cost = rng.uniform(1, 50, n_skus).round(2)
    skus = pd.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(n_skus)],
            "unit_cost": cost,
            "price": (cost * rng.uniform(1.3, 2.5, n_skus)).round(2),
            "case_pack": rng.choice([1, 6, 12, 24], n_skus),
            "moq": rng.choice([0, 24, 48], n_skus),
            "lead_time_days": rng.integers(2, 10, n_skus),
            "on_hand": rng.integers(0, 60, n_skus),
            "on_order": 0,
        }
    )
    p50 = rng.gamma(1.5, 4, n_skus)[:, None] * np.array([1, 1, 1, 1.1, 1.3, 1.5, 0.6])[np.arange(horizon) % 7]
    return WarehouseProblem("W1", skus, pd.date_range("2024-01-01", periods=horizon), 0.5 * p50, p50, 1.6 * p50, capacity_units=200.0 * n_skus)


def _peak_mb(solver: str) -> float:
    """Peak RSS so far: of this process (HiGHS runs in it), of child processes for CBC (a subprocess)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if solver == "cbc" else resource.RUSAGE_SELF).ru_maxrss / 1024


def solve_row(problem: WarehouseProblem, config: PlanConfig, label: str):
    t0 = time.perf_counter()
    try:
        plan = plan_warehouse(problem, config)
    except PlanError as error:
        return None, {
            "case": label,
            "solver": config.solver,
            "status": error.status,
            "mip_gap": None,
            "seconds": time.perf_counter() - t0,
            "message": str(error),
        }
    return plan, {
        "case": label,
        "solver": plan.solver,
        "status": plan.status,
        "mip_gap": plan.mip_gap,
        "seconds": time.perf_counter() - t0,
        "order_lines": len(plan.orders),
        "objective": plan.objective,
        "peak_rss_mb": _peak_mb(plan.solver),
        "advice": plan.advice,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--scenarios", type=int, default=20)
    record.add_arguments(parser, "benchmarks/results/inventory_plan.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    problem = generate(args.skus, args.horizon)
    config = PlanConfig(time_limit_s=args.time_limit, threads=2)
    rows = []
    plan, row = solve_row(problem, config, f"{args.skus} SKUs x {args.horizon} days")
    rows.append(row)
    rows.append(solve_row(problem, PlanConfig(time_limit_s=args.time_limit, threads=2, solver="cbc"), row["case"])[1])
    rows.append(solve_row(problem, PlanConfig(time_limit_s=2.0, gap=0.0, threads=2), "2 s limit, zero gap tolerance")[1])
    budget = 0.01 * float((problem.skus["unit_cost"].to_numpy() * problem.p50.sum(axis=1)).sum())
    rows.append(solve_row(problem, PlanConfig(budget=round(budget, 2), threads=2), "budget 1% of P50 spend")[1])

    rng = np.random.default_rng(1)
    sd = policy.daily_sd(problem.p10, problem.p90)
    placed = evaluate.order_matrix(problem, plan.orders)
    sims = {"MILP plan": [], "base-stock": []}
    for _ in range(args.scenarios):
        demand = np.maximum(np.round(rng.normal(problem.p50, sd)), 0.0)
        sims["MILP plan"].append(evaluate.simulate(problem, placed, demand, config).as_dict())
        sims["base-stock"].append(evaluate.base_stock(problem, demand, config)[1].as_dict())
    simulation = {name: {k: float(np.mean([o[k] for o in outs])) for k in outs[0]} for name, outs in sims.items()}

    print(f"\n{'case':<32}{'solver':<7}{'status':<12}{'gap':>8}{'seconds':>9}{'lines':>7}{'peak MB':>9}")
    for r in rows:
        gap = "n/a" if r["mip_gap"] is None else f"{r['mip_gap']:.2%}"
        print(f"{r['case']:<32}{r['solver']:<7}{r['status']:<12}{gap:>8}{r['seconds']:>9.1f}{r.get('order_lines', ''):>7}{r.get('peak_rss_mb', 0):>9.0f}")
        if r.get("message") or r.get("advice"):
            print(f"    {(r.get('message') or r['advice'])[:400]}")
    print(f"\nsimulation on {args.scenarios} demand draws (normal, P10/P90 spread), means:")
    for name, s in simulation.items():
        print(f"  {name:<10} fill rate {s['fill_rate']:.1%}  cost {s['cost']:,.0f}  lost units {s['lost_units']:,.0f}  order lines {s['order_lines']:.0f}")
    metrics = record.row_metrics(rows, ("case", "solver")) | record.row_metrics([{"policy": k, **v} for k, v in simulation.items()], ("policy",))
    payload = {"rows": rows, "simulation": simulation, "skus": args.skus, "horizon": args.horizon}
    record.save(args, f"inventory_plan {args.skus} SKUs", payload, metrics, {"skus": args.skus, "horizon": args.horizon, "scenarios": args.scenarios})


if __name__ == "__main__":
    main()
