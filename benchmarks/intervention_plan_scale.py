"""The coupon plan's assignment at a large shop's size: the LP-priced, pruned MILP of ``optimize.assign`` on
random (customer, action) pairs, and with ``--full`` the same MILP over every pair, solved as it was before.

    python benchmarks/intervention_plan_scale.py --out benchmarks/results/intervention_plan_scale.json
    python benchmarks/intervention_plan_scale.py --full   # adds the unpruned MILP (minutes; no plan within 200 s here)

Two cases on ``--customers`` customers x 3 actions, profit ~ N(0.5, 2) and spend ~ U(0.5, 5): the budget alone
(500), and a larger budget (5,000) with every action capped at 300 customers, where the caps bind.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pulp
import record

from ml import milp
from ml.intervention import optimize

CASES = {"budget 500": optimize.Limits(500.0, (None, None, None)), "budget 5000, caps 300": optimize.Limits(5000.0, (300, 300, 300))}


def full_milp(profit: np.ndarray, spend: np.ndarray, limits: optimize.Limits, time_limit_s: float) -> tuple[str, float | None, float]:
    """The plan's own model over every candidate pair, no start and no pruning: the anchor."""
    t0 = time.perf_counter()
    model = optimize.plan_model(optimize.candidate_pairs(profit, spend, limits, np.ones(len(profit), dtype=bool)), limits).problem
    _, status, _ = milp.solve(model, "highs", time_limit_s, 1e-3)
    value = pulp.value(model.objective) if status not in ("no_solution", "infeasible") else None
    return status, value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit-s", type=float, default=60.0)
    parser.add_argument("--full", action="store_true", help="also solve the unpruned MILP (the anchor; slow)")
    record.add_arguments(parser, "benchmarks/results/intervention_plan_scale.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = np.random.default_rng(args.seed)
    profit, spend = rng.normal(0.5, 2.0, (args.customers, 3)), rng.uniform(0.5, 5.0, (args.customers, 3))
    everyone = np.ones(args.customers, dtype=bool)
    rows = []
    for case, limits in CASES.items():
        plan = optimize.assign(profit, spend, limits, everyone, time_limit_s=args.time_limit_s)
        row = {"case": case, "pairs": int((profit > 0).sum()), "milp_pairs": plan.milp_pairs, "status": plan.status, "seconds": plan.seconds}
        row["profit"] = plan.totals(profit, spend)["profit"]
        if args.full:
            row["full_status"], row["full_profit"], row["full_seconds"] = full_milp(profit, spend, limits, args.time_limit_s)
        rows.append(row)
    print(f"\n{'case':<24}{'pairs':>9}{'MILP pairs':>12}{'status':>12}{'seconds':>9}{'profit':>10}" + (f"{'full':>12}{'full s':>9}" if args.full else ""))
    for r in rows:
        full = f"{r['full_status']:>12}{r['full_seconds']:>9.1f}" if args.full else ""
        print(f"{r['case']:<24}{r['pairs']:>9}{r['milp_pairs']:>12}{r['status']:>12}{r['seconds']:>9.1f}{r['profit']:>10.1f}{full}")
    record.save(args, "intervention plan scale", {"customers": args.customers, "seed": args.seed, "rows": rows}, record.row_metrics(rows, ("case",)))


if __name__ == "__main__":
    main()
