"""Segments against the truth: the synthetic shop with latent customer types, segmented as the daily pipeline does.

    python benchmarks/segments_synthetic.py --out benchmarks/results/segments_synthetic.json

For each seed the typed demo shop (``ShopConfig.customer_types``) is simulated; the pipeline's own code
(``ml.segments.segment.segment_tables``) segments the customers on the last two days, the second day matched to
the first's centroids as in production. Reported:
- how much the types overlap: per behaviour parameter (log activity, log basket, taste entropy, price
  sensitivity), the overlapping coefficient of each pair of types' distributions (1: identical, 0: disjoint), and
  how well a supervised classifier (QDA, 5-fold) tells the types apart from the true parameters and from the
  observed features the clustering sees (the ceiling for any segmentation of them);
- the adjusted Rand index between segments and types, and the share of customers who keep their segment from
  one day to the next (the types do not change). Goals (issue 22): ARI >= 0.6, kept >= 90%.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import logging
import time

import numpy as np
import pandas as pd
import record
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import cross_val_score
from sklearn.preprocessing import StandardScaler

from ml.segments import data, segment
from ml.segments.pipeline import SegmentsConfig
from ml.sources import synthetic

log = logging.getLogger("segments_synthetic")
PARAMETERS = {
    "log activity": lambda t: np.log(t["activity"]),
    "log basket": lambda t: np.log(t["basket"]),
    "taste entropy": lambda t: t["taste_entropy"],
    "sensitivity": lambda t: t["sensitivity"],
}


def overlap(a: np.ndarray, b: np.ndarray, bins: int = 40) -> float:
    """Overlapping coefficient of two samples: the area under both histograms on common bins."""
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
    pa, _ = np.histogram(a, edges)
    pb, _ = np.histogram(b, edges)
    return float(np.minimum(pa / pa.sum(), pb / pb.sum()).sum())


def separability(x: np.ndarray, types: np.ndarray) -> float:
    return float(cross_val_score(QuadraticDiscriminantAnalysis(reg_param=1e-3), StandardScaler().fit_transform(x), types, cv=5).mean())


def run_seed(seed: int, config: SegmentsConfig) -> dict:
    cfg = dataclasses.replace(synthetic.SCALES["demo"], customer_types=True, seed=seed)
    t0 = time.perf_counter()
    batch = synthetic.simulate(synthetic.build_world(cfg), cfg.start, cfg.end)
    truth = batch.ground_truth["customer_types"].set_index("customer_id")
    tables = {
        "customers": batch.tables["customers"],
        "events": batch.tables["events"],
        "orders": batch.tables["orders"],
        "items": batch.tables["order_items"],
        "products": batch.tables["products"],
    }
    log.info("seed %d: shop simulated in %.0fs", seed, time.perf_counter() - t0)
    first, second = cfg.end - dt.timedelta(days=1), cfg.end
    t0 = time.perf_counter()
    day1, profiles, centroids, clustering1 = segment.segment_tables(tables, first, config, None)
    day2, _, _, clustering2 = segment.segment_tables(tables, second, config, centroids.set_index("segment"))
    seconds = (time.perf_counter() - t0) / 2
    types = truth["customer_type"].reindex(day2["customer_id"]).to_numpy()
    both = day1.merge(day2, on="customer_id")
    kept = float((both["segment_x"] == both["segment_y"]).mean())
    pairs = {}
    for name, value in PARAMETERS.items():
        by_type = {t: value(rows).to_numpy() for t, rows in truth.groupby("customer_type")}
        pairs[name] = {f"{a}~{b}": overlap(by_type[a], by_type[b]) for a, b in itertools.combinations(sorted(by_type), 2)}
    latent = np.column_stack([value(truth.reindex(day2["customer_id"])) for value in PARAMETERS.values()])
    observed = data.behaviour(
        *(tables[n] for n in ("customers", "events", "orders", "items", "products")),
        pd.Timestamp(second + dt.timedelta(days=1), tz="UTC"),
        config.lookback_days,
    )
    observed = observed.set_index("customer_id").reindex(day2["customer_id"])[list(data.CLUSTER_FEATURES)].to_numpy()
    return {
        "seed": seed,
        "customers": len(day2),
        "k": clustering2.k,
        "stability": {str(k): v for k, v in clustering2.stability.items()},
        "ari": float(adjusted_rand_score(types, day2["segment"])),
        "ari_first_day": float(adjusted_rand_score(truth["customer_type"].reindex(day1["customer_id"]).to_numpy(), day1["segment"])),
        "kept_segment": kept,
        "overlap": pairs,
        "qda_latent": separability(latent, types),
        "qda_observed": separability(observed, types),
        "segment_seconds": seconds,
        "crosstab": pd.crosstab(types, day2["segment_name"].to_numpy()).to_dict(),
        "profiles": profiles.to_dict("records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    record.add_arguments(parser, "benchmarks/results/segments_synthetic.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = SegmentsConfig()
    runs = [run_seed(seed, config) for seed in args.seeds]
    print("\nType overlap (overlapping coefficient of each parameter's distributions, per pair of types; seed", runs[0]["seed"], ")")
    for name, pairs in runs[0]["overlap"].items():
        print(f"  {name:<14}" + "  ".join(f"{pair} {v:.2f}" for pair, v in pairs.items()))
    print(f"\n{'seed':>6}{'customers':>11}{'k':>4}{'ARI':>8}{'kept':>8}{'QDA latent':>12}{'QDA observed':>14}{'s/day':>8}")
    for r in runs:
        shares = f"{100 * r['kept_segment']:>7.1f}%{100 * r['qda_latent']:>11.1f}%{100 * r['qda_observed']:>13.1f}%"
        print(f"{r['seed']:>6}{r['customers']:>11,}{r['k']:>4}{r['ari']:>8.3f}{shares}{r['segment_seconds']:>8.1f}")
    for r in runs:
        print(f"\nseed {r['seed']}: types (rows) by segment name (columns)")
        print(pd.DataFrame(r["crosstab"]).fillna(0).astype(int).to_string())
    mean = {key: float(np.mean([r[key] for r in runs])) for key in ("ari", "kept_segment", "qda_latent", "qda_observed")}
    print(f"\nmean ARI {mean['ari']:.3f} (goal >= 0.6), kept {100 * mean['kept_segment']:.1f}% (goal >= 90%)")
    record.save(args, "segments synthetic", {"runs": runs, "mean": mean, "config": dataclasses.asdict(config)}, mean, {"seeds": str(args.seeds)})


if __name__ == "__main__":
    main()
