"""Recommendation quality on public data, every model beside popularity. Prints a table, writes JSON.

    python benchmarks/recsys_quality.py --beauty ../shared/data/recsys/amazon-beauty \
        --movielens ../shared/data/recsys/movielens-100k \
        --instruments ../shared/data/recsys/amazon-musical-instruments-5core \
        --seeds 42 43 44 --out benchmarks/results/recsys_quality.json

Two protocols. The published one per dataset (below), and the production one: a global temporal split (train
before the day that leaves the last 10% of interactions for test; test users and items known in training),
scored by the same code the pipeline uses (``ml.recsys.train.fit`` / ``holdout_metrics``), beside recent
popularity over the last 30 and 365 days; the pipeline's blend with and without recency (a customer's earlier
purchases counting less, EASE's share fading with their idle days) side by side.

Beauty (S3-Rec sequences, order without time: no temporal protocol) and Musical Instruments 5-core:
leave-last-item-out, full ranking against all items, seen items excluded. Any other sequence file in the S3-Rec
format (``user item item ...`` per line) runs the same way under its own name (``--sequences Sports.txt``: dataset
``sports``); published figures are printed only beside the datasets they were published on. Published on the
Beauty sequences:
SASRec 0.0605/0.0318 (original), SASRec+SS 0.0921/0.0531, eSASRec 0.0928/0.0523
(Recall@10 / NDCG@10). MovieLens-100k: Microsoft Recommenders protocol (stratified 75/25 per user, seed 42,
k=10); their BPR reaches NDCG@10 0.442.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import record
import scipy.sparse as sp

from ml.recsys import baselines, data, evaluate, train
from ml.recsys.sasrec import SASRecConfig
from ml.sources import public

PUBLISHED = {
    "beauty": {"SASRec (original)": (0.0605, 0.0318), "SASRec+SS": (0.0921, 0.0531), "eSASRec": (0.0928, 0.0523)},
    "movielens_100k": {"BPR (MS Recommenders)": (None, 0.442)},
}


def _row(dataset: str, model: str, metrics: dict, seconds: float, protocol: str, **extra) -> dict:
    return {
        "dataset": dataset,
        "protocol": protocol,
        "model": model,
        "recall_at_10": metrics["recall_at_10"],
        "ndcg_at_10": metrics["ndcg_at_10"],
        "coverage": metrics.get("coverage"),
        "popularity_bias": metrics.get("popularity_bias"),
        "seconds": seconds,
        **extra,
    }


def _matrix_model_metrics(model, seen, relevant, popularity) -> dict:
    top, _ = evaluate.top_k(model.score, seen, 10)
    return evaluate.ranking_metrics(top, relevant, popularity).as_dict()


def leave_last_out(dataset: str, events: pd.DataFrame, args) -> list[dict]:
    """Leave-last-item-out, full ranking against all items; EASE's l2 chosen on the validation items."""
    inter = data.from_events(events)
    split = data.leave_last_out(inter)
    rows = []
    for stage in ("valid", "test"):
        history = split.history(stage)
        seen = data.user_item_matrix(history, split.n_items)
        relevant = [np.array([t - 1]) for t in split.target(stage)]
        popularity = np.asarray(seen.sum(axis=0)).ravel()
        if stage == "valid":
            best_l2, best = None, -1.0
            for l2 in args.ease_l2:
                score = _matrix_model_metrics(baselines.EASE(seen, l2), seen, relevant, popularity)["ndcg_at_10"]
                logging.info("EASE l2=%g valid NDCG@10 %.4f", l2, score)
                if score > best:
                    best_l2, best = l2, score
            continue
        t0 = time.perf_counter()
        popular = _matrix_model_metrics(baselines.Popularity.from_matrix(seen), seen, relevant, popularity)
        rows.append(_row(dataset, "popularity", popular, time.perf_counter() - t0, protocol="leave-last-out"))
        t0 = time.perf_counter()
        rows.append(
            _row(
                dataset,
                f"EASE (l2={best_l2:g}, chosen on valid)",
                _matrix_model_metrics(baselines.EASE(seen, best_l2), seen, relevant, popularity),
                time.perf_counter() - t0,
                protocol="leave-last-out",
                l2=best_l2,
            )
        )
    if not args.skip_sasrec and "published" in args.protocols:
        from ml.recsys.sasrec import SequenceScorer, train_sasrec

        for seed in args.seeds:
            config = SASRecConfig(
                max_epochs=args.epochs,
                seed=seed,
                loss=args.loss,
                dropout=args.dropout,
                dim=args.dim,
                layers=args.layers,
                max_len=args.max_len,
                patience=args.patience,
                batch_size=args.batch_size,
                lr=args.lr,
                max_minutes=args.max_minutes,
            )
            model, trained = train_sasrec(split, config)
            metrics = _matrix_model_metrics(SequenceScorer(model, split.history("test")), seen, relevant, popularity)
            rows.append(
                _row(
                    dataset,
                    f"SASRec-{args.loss} seed {seed}",
                    metrics,
                    trained["train_seconds"],
                    "leave-last-out",
                    seed=seed,
                    epochs=trained["epochs"],
                    device=trained["device"],
                    lightning_test=trained,
                    config=config.__dict__,
                )
            )
    return rows


def _holdout_problem(train, test):
    """Train matrix, relevant test columns per training user, and item popularity for a split of events."""
    inter = data.from_events(train)
    seen = data.user_item_matrix(inter.sequences, inter.n_items)
    relevant = data.relevant_items(test, inter.user_ids, inter.item_ids)
    return seen, relevant, np.asarray(seen.sum(axis=0)).ravel()


def temporal(dataset: str, events: pd.DataFrame, ease_l2: float, args) -> list[dict]:
    """The production protocol with the pipeline's own fit and evaluation code."""
    at = events["event_ts"].quantile(1 - args.temporal_test_share).floor("D")
    trn, test = data.temporal_split(events, at)
    logging.info("%s temporal split at %s: %d train, %d test interactions", dataset, at.date(), len(trn), len(test))
    configs = [(f"recent popularity ({d}d)", train.RecsysConfig(model="popularity", popularity_days=d)) for d in (30, 365)]
    configs.append((f"EASE (l2={ease_l2:g})", train.RecsysConfig(model="ease", ease_l2=ease_l2)))
    # the pipeline's blend: its validation window is the holdout's length before the cutoff, as in production
    holdout_days = int((events["event_ts"].max() - at).days) + 1
    # without recency: a fixed mix of binary histories; with it, the mix also fades with a customer's idle days
    # and their earlier purchases count less (both chosen on the same validation window)
    for days in (30, 365):
        for recency in (False, True):
            blend_config = train.RecsysConfig(
                model="blend", ease_l2=ease_l2, popularity_days=days, holdout_days=holdout_days, history_days=3650, blend_recency=recency
            )
            configs.append((f"pipeline blend, popularity {days}d{', recency' if recency else ''}", blend_config))
    if not args.skip_sasrec:
        configs += [
            (f"SASRec-ce seed {seed}", train.RecsysConfig(model="sasrec", epochs=args.epochs, patience=args.patience, seed=seed)) for seed in args.seeds
        ]
    rows, per_user = [], {}
    for name, config in configs:
        t0 = time.perf_counter()
        model, facts = train.fit(trn, at, config)
        seconds = facts.get("train_seconds", time.perf_counter() - t0)
        problem = train.Holdout.of(model, trn, test)
        top = problem.ranked(model, 50)
        metrics = problem.summary(top)
        per_user[name] = evaluate.per_user(top[:, :10], problem.relevant)[2]  # NDCG@10 per test user, same order for every model
        rows.append(
            _row(
                dataset,
                name,
                metrics,
                seconds,
                protocol=f"temporal {at.date()}",
                seed=config.seed if config.model == "sasrec" else None,
                epochs=facts.get("epochs"),
                device=facts.get("device"),
                users=metrics["users"],
                popularity_weight=facts.get("popularity_weight"),
                query_decay=facts.get("query_decay"),
                idle_half_life=facts.get("idle_half_life"),
            )
        )
    # the bar is the better popularity window on the test, as in the README's tables
    best_popularity = max((r for r in rows if r["model"].startswith("recent popularity")), key=lambda r: r["ndcg_at_10"])
    for row in rows:
        if row["model"].startswith("pipeline blend"):
            row |= gain_interval(per_user[row["model"]], per_user[best_popularity["model"]])
    return rows + blend(dataset, trn, test, at, ease_l2, args)


def gain_interval(model: np.ndarray, baseline: np.ndarray, draws: int = 10_000) -> dict:
    """The relative NDCG@10 gain over the best recent popularity and its 95% paired bootstrap interval over test
    users: how large a gain the test window can tell from chance."""
    rng = np.random.default_rng(0)
    sample = rng.integers(0, len(model), (draws, len(model)))
    gains = model[sample].mean(axis=1) / baseline[sample].mean(axis=1) - 1
    low, high = np.quantile(gains, [0.025, 0.975])
    return {"gain_over_popularity": float(model.mean() / baseline.mean() - 1), "gain_ci95": [float(low), float(high)]}


BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
BLEND_POPULARITY = ("30d", "365d", "half-life 60d", "half-life 90d", "half-life 180d")
"""What sells now: the interactions of the last N days, or every interaction weighted by 0.5 ** (age / half-life)."""
HALF_LIVES = (None, 14, 30, 90, 365, 730)
"""EASE on time-decayed interactions: each one weighs 0.5 ** (age in days at the cutoff / half-life)."""


def popularity_counts(events: pd.DataFrame, item_ids: np.ndarray, at: pd.Timestamp, popularity: str) -> np.ndarray:
    """Per item (in ``item_ids`` order), before ``at``: a window's count ("365d") or a decayed count ("half-life 90d")."""
    days = int(popularity.removeprefix("half-life ").removesuffix("d"))
    if not popularity.startswith("half-life"):
        return baselines.recent_counts(events, item_ids, at, days)
    before = events[events["event_ts"] < at]
    decayed = pd.Series(decay_weights(before, at, days), index=before["product_id"].to_numpy()).groupby(level=0).sum()
    return decayed.reindex(pd.Index(item_ids), fill_value=0.0).to_numpy(dtype=np.float32)


def decay_weights(events: pd.DataFrame, at: pd.Timestamp, half_life: float | None) -> np.ndarray:
    """Each event's weight at ``at``: 0.5 ** (age in days / half-life), 1 without a half-life."""
    if not half_life:
        return np.ones(len(events))
    age_days = (at - events["event_ts"]).dt.total_seconds().to_numpy() / 86400.0
    return np.power(0.5, age_days / half_life)


def decayed_matrix(events: pd.DataFrame, customers: np.ndarray, item_ids: np.ndarray, at: pd.Timestamp, half_life: float | None) -> sp.csr_matrix:
    """Customers x items, each interaction weighted by its age at ``at`` (1 without a half-life)."""
    rows = pd.Index(customers).get_indexer(events["customer_id"])
    cols = pd.Index(item_ids).get_indexer(events["product_id"])
    known = (rows >= 0) & (cols >= 0)
    weight = decay_weights(events, at, half_life)
    return sp.csr_matrix((weight[known], (rows[known], cols[known])), shape=(len(customers), len(item_ids)))


def blend_ndcg(trn: pd.DataFrame, test: pd.DataFrame, at: pd.Timestamp, ease_l2: float, settings: list[tuple[float | None, str, float]]) -> dict:
    """Metrics on ``test`` of every (half-life, popularity, weight) blend of EASE fitted before ``at`` on decayed
    interactions with recent popularity."""
    ease, _ = train.fit(trn, at, train.RecsysConfig(model="ease", ease_l2=ease_l2))
    customers, histories = ease.histories(trn)
    seen = data.user_item_matrix(histories, ease.n_items)
    relevant = data.relevant_items(test[test["event_type"].isin(ease.event_types)], customers, ease.item_ids)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    typed = trn[trn["event_type"].isin(ease.event_types)]
    fitted = {}
    for half_life in {h for h, _, _ in settings}:
        matrix = decayed_matrix(typed, customers, ease.item_ids, at, half_life)
        fitted[half_life] = baselines.EASE(matrix, ease_l2)
    out = {}
    counts = {name: popularity_counts(trn, ease.item_ids, at, name) for name in {p for _, p, _ in settings}}
    for half_life, recent, weight in settings:
        blend = baselines.Blend(fitted[half_life].score, counts[recent], weight)
        top, _ = evaluate.top_k(blend.score, seen, 10)
        out[half_life, recent, weight] = evaluate.ranking_metrics(top, relevant, popularity).as_dict()
    return out


def blend(dataset: str, trn: pd.DataFrame, test: pd.DataFrame, at: pd.Timestamp, ease_l2: float, args) -> list[dict]:
    """EASE on decayed interactions blended with recent popularity, the half-life, the popularity and the weight chosen
    on a validation window cut from the end of the training period (the same share), never on the test; every
    setting's test figure is reported."""
    t0 = time.perf_counter()
    settings = [(half_life, recent, weight) for half_life in HALF_LIVES for recent in BLEND_POPULARITY for weight in BLEND_WEIGHTS]
    valid_at = trn["event_ts"].quantile(1 - args.temporal_test_share).floor("D")
    valid = blend_ndcg(*data.temporal_split(trn, valid_at), valid_at, ease_l2, settings)
    chosen = max(settings, key=lambda s: valid[s]["ndcg_at_10"])
    tested = blend_ndcg(trn, test, at, ease_l2, settings)
    seconds = time.perf_counter() - t0
    protocol = f"temporal {at.date()}"

    def label(half_life: float | None, recent: str, weight: float) -> str:
        return f"EASE half-life {half_life or 'none'} + popularity {recent}, w={weight:g}"

    rows = [_row(dataset, f"{label(*chosen)} (chosen on validation)", tested[chosen], seconds, protocol)]
    rows += [_row(dataset, f"  every setting: {label(*s)}", tested[s], 0.0, protocol, valid_ndcg=valid[s]["ndcg_at_10"]) for s in settings]
    return rows


def movielens(dataset: str, events: pd.DataFrame, args) -> list[dict]:
    """Microsoft Recommenders' protocol: stratified 75/25 per user, EASE's l2 chosen on an inner split."""
    train, test = data.stratified_split(events, 0.75, seed=42)
    seen, relevant, popularity = _holdout_problem(train, test)
    # l2 chosen on an inner 75/25 split of the training part, then refitted on all of it
    inner = _holdout_problem(*data.stratified_split(train, 0.75, seed=7))
    scores = {l2: _matrix_model_metrics(baselines.EASE(inner[0], l2), *inner)["ndcg_at_10"] for l2 in args.ease_l2}
    best_l2 = max(scores, key=scores.get)
    rows = []
    for name, model in (("popularity", baselines.Popularity.from_matrix(seen)), (f"EASE (l2={best_l2:g}, chosen on inner split)", None)):
        t0 = time.perf_counter()
        model = model or baselines.EASE(seen, best_l2)
        rows.append(
            _row(dataset, name, _matrix_model_metrics(model, seen, relevant, popularity), time.perf_counter() - t0, protocol="stratified 75/25", l2=best_l2)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beauty", type=Path, help="the amazon-beauty folder (its Beauty.txt)")
    parser.add_argument("--sequences", type=Path, nargs="+", default=[], help="sequence files in the S3-Rec format, each named by its stem")
    parser.add_argument("--movielens", type=Path)
    parser.add_argument("--instruments", type=Path, help="Amazon Musical Instruments 5-core (real timestamps)")
    record.add_arguments(parser, "benchmarks/results/recsys_quality.json")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--loss", choices=["ce", "sampled"], default="ce")
    parser.add_argument("--dropout", type=float, default=SASRecConfig.dropout)
    parser.add_argument("--dim", type=int, default=SASRecConfig.dim)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--ease-l2", type=float, nargs="+", default=[5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per SASRec training run")
    parser.add_argument("--skip-sasrec", action="store_true")
    parser.add_argument("--protocols", nargs="+", choices=["published", "temporal"], default=["published", "temporal"])
    parser.add_argument("--temporal-test-share", type=float, default=0.1, help="share of interactions after the temporal cutoff")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    # Beauty's S3-Rec sequences keep the order of purchases but not their time: no temporal protocol there
    datasets = [
        ("movielens_100k", args.movielens, public.read_movielens_100k, movielens, True),
        ("instruments", args.instruments, public.read_amazon_instruments, leave_last_out, True),
        ("beauty", args.beauty, public.read_amazon_beauty, leave_last_out, False),
    ]
    datasets += [(file.stem.lower(), file, public.read_sequences, leave_last_out, False) for file in args.sequences]
    for name, path, read, run, timed in datasets:
        if path is None:
            continue
        events = read(path)["events"]
        published = run(name, events, args)  # always run: it chooses EASE's l2, which the temporal protocol reuses
        rows += [r for r in published if "published" in args.protocols]
        if "temporal" in args.protocols and timed:
            l2 = next(r["l2"] for r in published if r.get("l2") is not None)
            rows += temporal(name, events, l2, args)
    header = f"{'dataset':<16}{'protocol':<22}{'model':<40}{'seed':>5}{'epochs':>7}{'Recall@10':>10}{'NDCG@10':>10}{'coverage':>9}{'pop.bias':>9}{'seconds':>9}"
    print("\n" + header)
    for r in rows:
        cov = "" if r["coverage"] is None else f"{r['coverage']:.3f}"
        bias = "" if r["popularity_bias"] is None else f"{r['popularity_bias']:.3f}"
        seed, epochs = r.get("seed") or "", r.get("epochs") or ""
        print(
            f"{r['dataset']:<16}{r['protocol']:<22}{r['model']:<40}{seed!s:>5}{epochs!s:>7}{r['recall_at_10']:>10.4f}"
            f"{r['ndcg_at_10']:>10.4f}{cov:>9}{bias:>9}{r['seconds']:>9.1f}"
            + (f"  vs best popularity {r['gain_over_popularity']:+.1%} (95% CI {r['gain_ci95'][0]:+.1%}..{r['gain_ci95'][1]:+.1%})" if "gain_ci95" in r else "")
        )
    published_here = {dataset: refs for dataset, refs in PUBLISHED.items() if dataset in {r["dataset"] for r in rows}}
    for dataset, refs in published_here.items():
        for name, (rec, ndcg) in refs.items():
            print(f"{dataset:<16}{'(literature)':<22}{'reported: ' + name:<40}{'':>5}{'':>7}{'' if rec is None else f'{rec:.4f}':>10}{ndcg:>10.4f}")
    params = {k: v for k, v in vars(args).items() if k not in ("out", "sequences", "ease_l2")} | {"seeds": " ".join(map(str, args.seeds))}
    metrics = record.row_metrics(rows, ("dataset", "protocol", "model", "seed"))
    record.save(args, "recsys_quality", {"rows": rows, "published": published_here, "python": platform.python_version()}, metrics, params)


if __name__ == "__main__":
    main()
