"""Recommendation quality on public data, every model beside popularity. Prints a table, writes JSON.

    python benchmarks/recsys_quality.py --beauty ../shared/data/recsys/amazon-beauty \
        --movielens ../shared/data/recsys/movielens-100k --out benchmarks/results/recsys_quality.json

Beauty (S3-Rec sequences): leave-last-item-out, full ranking against all items, seen items excluded.
Published on these sequences: SASRec 0.0605/0.0318 (original), SASRec+SS 0.0921/0.0531, eSASRec 0.0928/0.0523
(Recall@10 / NDCG@10). MovieLens-100k: Microsoft Recommenders protocol (stratified 75/25 per user, seed 42,
k=10); their BPR reaches NDCG@10 0.442.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from ml.recsys import baselines, data, evaluate
from ml.sources import public

PUBLISHED = {"beauty": {"SASRec (original)": (0.0605, 0.0318), "SASRec+SS": (0.0921, 0.0531), "eSASRec": (0.0928, 0.0523)},
             "movielens_100k": {"BPR (MS Recommenders)": (None, 0.442)}}


def _row(dataset: str, model: str, metrics: dict, seconds: float, **extra) -> dict:
    return {"dataset": dataset, "model": model, "recall_at_10": metrics["recall_at_10"], "ndcg_at_10": metrics["ndcg_at_10"],
            "coverage": metrics.get("coverage"), "popularity_bias": metrics.get("popularity_bias"), "seconds": seconds, **extra}


def _matrix_model_metrics(model, seen, relevant, popularity) -> dict:
    top, _ = evaluate.top_k(model.score, seen, 10)
    return evaluate.ranking_metrics(top, relevant, popularity).as_dict()


def beauty(path: Path, args) -> list[dict]:
    inter = data.from_events(public.read_amazon_beauty(path)["events"])
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
        rows.append(_row("beauty", "popularity", _matrix_model_metrics(baselines.Popularity(seen), seen, relevant, popularity), time.perf_counter() - t0))
        t0 = time.perf_counter()
        rows.append(_row("beauty", f"EASE (l2={best_l2:g}, chosen on valid)", _matrix_model_metrics(baselines.EASE(seen, best_l2), seen, relevant, popularity),
                         time.perf_counter() - t0))
    if not args.skip_sasrec:
        from ml.recsys.sasrec import SASRecConfig, SequenceScorer, train_sasrec

        for seed in args.seeds:
            config = SASRecConfig(max_epochs=args.epochs, seed=seed, loss=args.loss, dropout=args.dropout, dim=args.dim,
                                  layers=args.layers, max_len=args.max_len, patience=args.patience,
                                  batch_size=args.batch_size, lr=args.lr, max_minutes=args.max_minutes)
            model, trained = train_sasrec(split, config)
            metrics = _matrix_model_metrics(SequenceScorer(model, split.history("test")), seen, relevant, popularity)
            rows.append(_row("beauty", f"SASRec-{args.loss} seed {seed}", metrics, trained["train_seconds"], seed=seed,
                             epochs=trained["epochs"], device=trained["device"], lightning_test=trained, config=config.__dict__))
    return rows


def _holdout_problem(train, test):
    """Train matrix, relevant test columns per training user, and item popularity for a split of events."""
    inter = data.from_events(train)
    users = {u: i for i, u in enumerate(inter.user_ids)}
    items = {p: i for i, p in enumerate(inter.item_ids)}
    seen = data.user_item_matrix(inter.sequences, inter.n_items)
    relevant = [np.array([], dtype=np.int64)] * inter.n_users
    for user, bought in test[test["product_id"].isin(items) & test["customer_id"].isin(users)].groupby("customer_id")["product_id"]:
        relevant[users[user]] = np.array([items[p] for p in bought])
    return seen, relevant, np.asarray(seen.sum(axis=0)).ravel()


def movielens(path: Path, args) -> list[dict]:
    events = public.read_movielens_100k(path)["events"]
    train, test = data.stratified_split(events, 0.75, seed=42)
    seen, relevant, popularity = _holdout_problem(train, test)
    # l2 chosen on an inner 75/25 split of the training part, then refitted on all of it
    inner = _holdout_problem(*data.stratified_split(train, 0.75, seed=7))
    scores = {l2: _matrix_model_metrics(baselines.EASE(inner[0], l2), *inner)["ndcg_at_10"] for l2 in args.ease_l2}
    best_l2 = max(scores, key=scores.get)
    rows = []
    for name, model in (("popularity", baselines.Popularity(seen)), (f"EASE (l2={best_l2:g}, chosen on inner split)", None)):
        t0 = time.perf_counter()
        model = model or baselines.EASE(seen, best_l2)
        rows.append(_row("movielens_100k", name, _matrix_model_metrics(model, seen, relevant, popularity), time.perf_counter() - t0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beauty", type=Path)
    parser.add_argument("--movielens", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recsys_quality.json"))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--loss", choices=["ce", "sampled"], default="ce")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--ease-l2", type=float, nargs="+", default=[5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per SASRec training run")
    parser.add_argument("--skip-sasrec", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    if args.movielens:
        rows += movielens(args.movielens, args)
    if args.beauty:
        rows += beauty(args.beauty, args)
    print(f"\n{'dataset':<16}{'model':<44}{'Recall@10':>10}{'NDCG@10':>10}{'coverage':>10}{'pop.bias':>10}{'seconds':>9}")
    for r in rows:
        cov = "" if r["coverage"] is None else f"{r['coverage']:.3f}"
        bias = "" if r["popularity_bias"] is None else f"{r['popularity_bias']:.3f}"
        print(f"{r['dataset']:<16}{r['model']:<44}{r['recall_at_10']:>10.4f}{r['ndcg_at_10']:>10.4f}{cov:>10}{bias:>10}{r['seconds']:>9.1f}")
    for dataset, refs in PUBLISHED.items():
        for name, (rec, ndcg) in refs.items():
            print(f"{dataset:<16}{'published: ' + name:<44}{'' if rec is None else f'{rec:.4f}':>10}{ndcg:>10.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "published": PUBLISHED, "machine": platform.platform(),
                                    "python": platform.python_version()}, indent=2, default=str))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
