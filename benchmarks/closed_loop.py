"""The platform in closed loop, measured in money against the passive shop (issue 21).

    python benchmarks/closed_loop.py --out benchmarks/results/closed_loop.json

The demo shop's first ``--history-days`` days are its open-loop history; then for ``--days`` days the shop reacts
to what each policy publishes (``ml.simulation``; the response rules are in the README's "Closed loop" section):
the platform's champions, the passive shop (bestseller lists, no coupons, its own (s, S) stock policy) and one
ablation per component. Platform and passive run on every seed, the ablations on the first ``--ablation-seeds``.
Printed: each policy's gross profit with a 95% interval over seeds, fill rate, lost units, holding cost, on-time
share, km, coupon spend and recommendation hit rate; the platform minus the passive shop paired by seed, and each
component's contribution. The HTML report is written beside the JSON.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import record

from ml.settings import get_settings
from ml.simulation import loop, policies
from ml.simulation.pipeline import SimulationConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 11])
    parser.add_argument("--ablation-seeds", type=int, default=1)
    parser.add_argument("--policies", nargs="+", default=list(policies.POLICIES))
    parser.add_argument("--params", default="{}", help="JSON Params per pipeline inside the loop")
    parser.add_argument("--base-stock-safety", type=float, default=SimulationConfig.base_stock_safety, help="the passive shop's (s, S) margin")
    parser.add_argument("--jobs", type=int, default=2, help="policy runs at a time, each in its own process")
    record.add_arguments(parser, "benchmarks/results/closed_loop.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("mlflow", "ml.routing.route", "ml.ingest", "ml.validation", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = SimulationConfig(
        scale=args.scale,
        days=args.days,
        history_days=args.history_days,
        policies=tuple(args.policies),
        seeds=tuple(args.seeds),
        ablation_seeds=args.ablation_seeds,
        base_stock_safety=args.base_stock_safety,
        pipeline_params=args.params,
    )
    work = Path(tempfile.mkdtemp(prefix="closed-loop-"))
    try:
        summary = loop.simulate(get_settings(), config, work, args.jobs, log_mlflow=not args.no_mlflow)
        page = Path(summary["report"]).read_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'policy':<14}{'gross profit [95% CI]':>38}{'fill':>8}{'lost':>8}{'holding':>10}{'on time':>9}{'km':>9}{'coupons':>10}{'rec hit':>9}")
    for name, p in summary["policies"].items():
        g = p["gross_profit"]
        ci = f"[{g['ci95'][0]:,.0f}, {g['ci95'][1]:,.0f}]" if g["ci95"] else "(1 seed)"
        on_time = "-" if p["on_time_share"] is None else f"{p['on_time_share']:.1%}"
        km = "-" if p["delivery_km"] is None else f"{p['delivery_km']:,.0f}"
        print(
            f"{name:<14}{g['mean']:>16,.0f} {ci:>21}{p['fill_rate']:>8.1%}{p['lost_units']:>8,.0f}{p['holding_cost']:>10,.0f}{on_time:>9}{km:>9}"
            f"{p['coupon_discount']:>10,.0f}{p['rec_hit_rate']:>9.1%}"
        )
    print(f"\nplatform - passive (paired by seed): {summary['platform_vs_passive']}")
    for component, value in summary["contributions"].items():
        print(f"contribution of the {component}: {value}")
    print(f"coupon ROI: {summary['coupon_roi']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".html").write_text(page)
    args.no_mlflow = True  # the simulation logged its own run to the ecom_simulation experiment
    record.save(args, "closed loop", {k: v for k, v in summary.items() if k not in ("report", "figures")}, {})


if __name__ == "__main__":
    main()
