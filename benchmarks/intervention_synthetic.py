"""The coupon plan on the synthetic shop, where every customer's true uplift is known: expected incremental
profit (under the truth) of the optimised plan with each uplift learner, against the oracle plan (same optimiser,
true uplift and base rate) and the targeting rules (highest propensity first, random) at the same budget.

    python benchmarks/intervention_synthetic.py --scale large --out benchmarks/results/intervention_synthetic.json

The newest ``--holdout-campaigns`` campaigns are held out; the plan is made for the customers of the newest one
(features from the morning the coupon went out), budgets are shares of what sending everyone the deepest coupon
would cost (under the truth). Goal: the plan captures >= 80% of the oracle's profit and beats both rules. The
figures and each action's Qini curves on the held-out campaigns go to MLflow (experiment
``ecom_intervention_benchmarks`` in the configured tracking store; ``--no-mlflow`` skips it).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import pandas as pd
import record

from ml import contract
from ml.customer_features import FEATURES
from ml.intervention import data, optimize
from ml.intervention.model import KINDS, Propensity, UpliftLearner
from ml.intervention.train import BENCHMARK_EXPERIMENT, InterventionConfig, economics_of, qini_by_action, qini_figure
from ml.sources import synthetic

log = logging.getLogger("intervention_synthetic")


def simulate(scale: str, seed: int) -> tuple[data.Tables, pd.DataFrame]:
    cfg = synthetic.scale_config(scale, seed)
    batch = synthetic.simulate(synthetic.build_world(cfg), cfg.start, cfg.end)
    t = batch.tables
    tables = data.Tables(t["customers"], t["events"], t["orders"], t["order_items"], t["products"], t["coupon_campaigns"])
    return tables, batch.ground_truth["coupon_uplift"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="large", choices=sorted(synthetic.SCALES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--holdout-campaigns", type=int, default=3)
    parser.add_argument("--budget-shares", type=float, nargs="+", default=[0.02, 0.05, 0.2])
    record.add_arguments(parser, "benchmarks/results/intervention_synthetic.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = InterventionConfig()
    t0 = time.perf_counter()
    tables, truth = simulate(args.scale, args.seed)
    rows = data.campaign_set(tables, config.actions, config.lookback_days).merge(truth, on=["campaign_id", "customer_id"])
    train, holdout = data.split_campaigns(rows, args.holdout_campaigns)
    newest = holdout[holdout["sent_ts"] == holdout["sent_ts"].max()].reset_index(drop=True)
    log.info(
        "shop %s simulated and %d campaign rows featurised in %.0fs; %d training rows, planning for %d customers of %s",
        args.scale,
        len(rows),
        time.perf_counter() - t0,
        len(train),
        len(newest),
        newest["campaign_id"].iloc[0],
    )

    econ = economics_of(tables, train, config)
    true_profit, true_spend = econ.of(newest["p_base"].to_numpy(), {a: newest[f"uplift_{a}"].to_numpy() for a in config.actions})
    X, everyone = list(FEATURES), np.ones(len(newest), dtype=bool)

    estimates, qini, learners = {}, {}, {}
    for kind in KINDS:
        learner = UpliftLearner(kind, config.actions, config.trees()).fit(train[X], train["treatment"].to_numpy(), train["converted"].astype(int).to_numpy())
        p0, uplift = learner.predict(newest[X])
        estimates[f"{kind}-learner plan"] = econ.of(p0, uplift)
        qini[f"{kind}-learner"] = qini_by_action(learner, holdout)
        learners[f"{kind}-learner"] = learner

    as_ofs = data.snapshot_days(newest["as_of"].iloc[0] - pd.Timedelta(days=config.window_days), config.snapshots)
    snapshots = data.propensity_set(tables, as_ofs, config.window_days, config.lookback_days)
    fit_rows, calibration = snapshots[snapshots["as_of"] < as_ofs[-1]], snapshots[snapshots["as_of"] == as_ofs[-1]]
    propensity = Propensity(config.trees()).fit(fit_rows[X], fit_rows["label"], calibration[X], calibration["label"]).predict(newest[X])
    # the rules send the action with the best average effect seen in the training campaigns (no model)
    rate = train.groupby("treatment")["converted"].mean()
    best_action = int(np.argmax([rate[a] - rate[contract.CONTROL] for a in config.actions]))
    fixed = np.full(len(newest), best_action)
    p0_rule = np.full(len(newest), rate[contract.CONTROL])
    _, rule_spend = econ.of(p0_rule, {a: np.full(len(newest), rate[a] - rate[contract.CONTROL]) for a in config.actions})

    results = []
    for share in args.budget_shares:
        limits = optimize.Limits(share * true_spend[:, -1].sum(), (None,) * len(config.actions))
        oracle = optimize.assign(true_profit, true_spend, limits, everyone).totals(true_profit, true_spend)
        policies = {name: optimize.assign(p, s, limits, everyone) for name, (p, s) in estimates.items()}
        policies["highest propensity"] = optimize.ranked(np.argsort(-propensity), fixed, rule_spend, limits, everyone, "propensity")
        policies["random"] = optimize.ranked(np.random.default_rng(args.seed).permutation(len(newest)), fixed, rule_spend, limits, everyone, "random")
        for name, chosen in policies.items():
            got = chosen.totals(true_profit, true_spend)
            results.append(
                {
                    "budget_share": share,
                    "budget": limits.budget,
                    "policy": name,
                    "true_profit": got["profit"],
                    "true_spend": got["spend"],
                    "customers": got["customers"],
                    "per_action": got["per_action"],
                    "share_of_oracle": got["profit"] / oracle["profit"],
                    "oracle_profit": oracle["profit"],
                }
            )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"\nSynthetic shop '{args.scale}': plan for {len(newest):,} customers of {newest['campaign_id'].iloc[0]}; "
        f"trained on {len(train):,} campaign rows; value/conversion {econ.value_per_conversion:.2f}, margin {econ.margin:.1%}"
    )
    print(f"{'budget':>10}{'policy':<24}{'customers':>10}{'true profit':>13}{'of oracle':>11}{'true spend':>12}")
    for r in results:
        print(f"{r['budget']:>10.0f}  {r['policy']:<22}{r['customers']:>10,}{r['true_profit']:>13.1f}{r['share_of_oracle']:>11.1%}{r['true_spend']:>12.1f}")
    print("\nQini coefficient on the held-out campaigns: " + "; ".join(f"{k} " + ", ".join(f"{a} {v:.4f}" for a, v in q.items()) for k, q in qini.items()))
    print(f"total {time.perf_counter() - t0:.0f}s, peak RSS {peak_gb:.1f} GB")
    payload = {
        "scale": args.scale,
        "seed": args.seed,
        "planned_customers": len(newest),
        "training_rows": len(train),
        "results": results,
        "qini": qini,
        "value_per_conversion": econ.value_per_conversion,
        "margin": econ.margin,
        "seconds": time.perf_counter() - t0,
        "peak_rss_gb": peak_gb,
    }
    metrics = {f"{r['policy']}.budget_{r['budget_share']:g}.{k}": r[k] for r in results for k in ("share_of_oracle", "true_profit", "true_spend")}
    metrics |= {f"{name}.qini.{action}": value for name, q in qini.items() for action, value in q.items()}
    figures = {} if args.no_mlflow else {f"qini/qini_{action}.png": qini_figure(learners, holdout, action) for action in config.actions}
    params = {"scale": args.scale, "seed": args.seed, "planned_customers": len(newest), "training_rows": len(train), **config.as_dict()}
    record.save(args, f"synthetic {args.scale} seed {args.seed}", payload, metrics, params, figures, experiment=BENCHMARK_EXPERIMENT)


if __name__ == "__main__":
    main()
