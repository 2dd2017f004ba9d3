"""Uplift on Hillstrom's e-mail experiment: Qini coefficient on held-out splits of the T-, X- and S-learner, of
``auto`` (per e-mail, the learner with the best cross-validated Qini inside the training split; LightGBM, the
pipeline's own learners and settings) and of random targeting, per e-mail vs no e-mail.

    python benchmarks/intervention_hillstrom.py --csv ../shared/data/uplift/hillstrom/hillstrom_part_a.csv \\
        --outcome visit --seeds 20 --out benchmarks/results/intervention_hillstrom.json

Each seed draws a 70/30 split stratified by arm and outcome; the table shows mean and standard deviation over
seeds. The T-, X- and auto learner are then compared with the S-learner and random targeting seed by seed (mean Qini
difference with a 95% interval from the corrected resampled t-test, since the splits overlap). The figures and
each e-mail's Qini curves on the first split go to MLflow (experiment ``ecom_intervention_benchmarks`` in the
configured tracking store; ``--no-mlflow`` skips it). Any CSV with Hillstrom's columns works (the other half of
the experiment, another campaign).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import record

from ml import contract
from ml.intervention.evaluate import compare_on_resamples, qini_coefficient, qini_curve, qini_plot
from ml.intervention.model import KINDS, TreeConfig, UpliftLearner
from ml.intervention.train import BENCHMARK_EXPERIMENT, InterventionConfig

log = logging.getLogger("intervention_hillstrom")

ARMS = {"No E-Mail": contract.CONTROL, "Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email"}
ACTIONS = ("mens_email", "womens_email")
TEST_SHARE = 0.3


def read(csv: Path, outcome: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    raw = pd.read_csv(csv)
    missing = {"recency", "history", "mens", "womens", "zip_code", "newbie", "channel", "segment", outcome} - set(raw.columns)
    if missing:
        raise SystemExit(f"{csv}: missing Hillstrom columns {sorted(missing)}")
    unknown = set(raw["segment"]) - set(ARMS)
    if unknown:
        raise SystemExit(f"{csv}: segment values {sorted(unknown)} are not {sorted(ARMS)}")
    X = pd.get_dummies(raw[["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]], columns=["zip_code", "channel"], dtype=float)
    return X, raw["segment"].map(ARMS).to_numpy(), raw[outcome].astype(int).to_numpy()


def split(treatment: np.ndarray, y: np.ndarray, seed: int, test_share: float = TEST_SHARE) -> np.ndarray:
    """A test mask stratified by arm and outcome."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    strata = pd.Series(treatment).astype(str) + "/" + pd.Series(y).astype(str)
    for idx in strata.groupby(strata).groups.values():
        idx = np.asarray(idx)
        test[rng.choice(idx, size=round(len(idx) * test_share), replace=False)] = True
    return test


def versus_control(treatment: np.ndarray, action: str) -> np.ndarray:
    """The rows of one e-mail and of no e-mail: each e-mail is scored against the control arm only."""
    return np.isin(treatment, [action, contract.CONTROL])


def qini_per_action(scores: dict[str, np.ndarray], treatment: np.ndarray, y: np.ndarray) -> dict[str, float]:
    out = {}
    for action in ACTIONS:
        rows = versus_control(treatment, action)
        out[action] = qini_coefficient(y[rows], scores[action][rows], treatment[rows] == action)
    return out


def score_split(
    X: pd.DataFrame, treatment: np.ndarray, y: np.ndarray, test: np.ndarray, trees: TreeConfig, seed: int
) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Fit every learner on the training rows; (one result row per model, each model's uplift scores on the test rows)."""
    rng = np.random.default_rng(1000 + seed)
    scores, seconds = {"random": {a: rng.random(test.sum()) for a in ACTIONS}}, {"random": 0.0}
    for kind in KINDS:
        t0 = time.perf_counter()
        learner = UpliftLearner(kind, ACTIONS, trees).fit(X[~test], treatment[~test], y[~test])
        scores[f"{kind}-learner"] = learner.predict(X[test])[1]
        seconds[f"{kind}-learner"] = time.perf_counter() - t0
    rows = []
    for name, uplift in scores.items():
        qini = qini_per_action(uplift, treatment[test], y[test])
        rows.append({"seed": seed, "model": name, **qini, "qini": float(np.mean(list(qini.values()))), "seconds": seconds[name]})
        log.info("seed %d %s: %s", seed, name, rows[-1])
    return rows, scores


def qini_figures(scores: dict[str, dict[str, np.ndarray]], treatment: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Per e-mail, the Qini curves of every model on one split's test rows."""
    figures = {}
    for action in ACTIONS:
        rows = versus_control(treatment, action)
        curves = {name: qini_curve(y[rows], uplift[action][rows], treatment[rows] == action) for name, uplift in scores.items() if name != "random"}
        figures[f"qini_{action}_seed{seed}.png"] = qini_plot(curves, f"Hillstrom, {action} vs no e-mail, split {seed} (30% held out)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--outcome", default="visit", choices=["visit", "conversion"])
    parser.add_argument("--seeds", type=int, default=20)
    record.add_arguments(parser, "benchmarks/results/intervention_hillstrom.json")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (the comparisons are paired over splits)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    X, treatment, y = read(args.csv, args.outcome)
    trees = InterventionConfig().trees()
    runs, figures = [], {}
    for seed in range(args.seeds):
        test = split(treatment, y, seed)
        rows, scores = score_split(X, treatment, y, test, trees, seed)
        runs += rows
        if seed == 0:
            figures = qini_figures(scores, treatment[test], y[test], seed)
    frame = pd.DataFrame(runs)
    summary = frame.groupby("model")[[*ACTIONS, "qini", "seconds"]].agg(["mean", "std"])
    print(f"\nHillstrom ({len(y):,} customers, outcome {args.outcome}), Qini coefficient on 30% held out, {args.seeds} seeds")
    print(f"{'model':<12}{'mens e-mail':>18}{'womens e-mail':>18}{'mean':>18}{'fit s':>8}")
    for model in ["t-learner", "x-learner", "auto-learner", "s-learner", "random"]:
        row = summary.loc[model]
        cells = "".join(f"{row[(c, 'mean')]:>10.4f} ± {row[(c, 'std')]:.3f}" for c in (*ACTIONS, "qini"))
        print(f"{model:<12}{cells}{row[('seconds', 'mean')]:>8.1f}")
    comparisons = compare(frame)
    print(f"\nPaired over the {args.seeds} splits: mean Qini difference [95% interval], p, splits ahead")
    for c in comparisons:
        print(
            f"{c['model']:<10} - {c['baseline']:<10} {c['metric']:<13}{c['mean_difference']:>+8.4f} "
            f"[{c['low']:+.4f}, {c['high']:+.4f}]  p={c['p_value']:.3f}  {c['ahead']}/{c['resamples']}"
        )
    payload = {"csv": str(args.csv), "outcome": args.outcome, "customers": len(y), "runs": runs, "comparisons": comparisons, "trees": trees.params()}
    metrics = {f"{model}.{metric}": float(summary.loc[model, (metric, "mean")]) for model in summary.index for metric in (*ACTIONS, "qini")}
    metrics |= {f"{c['model']}_vs_{c['baseline']}.{c['metric']}.{k}": c[k] for c in comparisons for k in ("mean_difference", "low", "high")}
    params = {"csv": str(args.csv), "outcome": args.outcome, "seeds": args.seeds, **trees.params()}
    qini_plots = {f"qini/{name}": fig for name, fig in figures.items()}
    record.save(args, f"hillstrom {args.csv.stem} {args.outcome}", payload, metrics, params, qini_plots, experiment=BENCHMARK_EXPERIMENT)


def compare(frame: pd.DataFrame) -> list[dict]:
    """Each two-model learner against the S-learner and random targeting, per e-mail and on the mean."""
    wide = frame.pivot(index="seed", columns="model")
    out = []
    for model in ("t-learner", "x-learner", "auto-learner"):
        for baseline in ("s-learner", "random"):
            for metric in (*ACTIONS, "qini"):
                result = compare_on_resamples(wide[(metric, model)].to_numpy(), wide[(metric, baseline)].to_numpy(), TEST_SHARE)
                out.append({"model": model, "baseline": baseline, "metric": metric, **vars(result)})
    return out


if __name__ == "__main__":
    main()
