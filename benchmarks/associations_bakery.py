"""Frequently bought together on real baskets: FP-growth rules from the bakery's transactions, and basket completion
against popularity on a temporal split.

    python benchmarks/associations_bakery.py --bakery ../shared/data/forecast/bakery-breadbasket \\
        --out benchmarks/results/associations_bakery.json

The transactions before the cutoff (the last ``--test-share`` of them by time are the test) are mined with the
pipeline's own code and thresholds; one product is held out of every test basket of two or more (at random, the
same for every method), and each method offers ``--k`` products for the rest. Rules: each product's chance is the
highest confidence of a rule from the basket's products to it, else its share of the training baskets;
popularity: the most frequent products of the training baskets. Goal (issue 22): the rules' hit rate beats popularity's.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import record

from ml.associations import data, evaluate, model
from ml.associations.pipeline import AssociationsConfig
from ml.sources import public

log = logging.getLogger("associations_bakery")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bakery", type=Path, required=True, help="the bakery-breadbasket folder (BreadBasket_DMS.csv)")
    parser.add_argument("--test-share", type=float, default=0.2, help="newest share of the transactions held out")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="draws of the held-out product")
    parser.add_argument("--top", type=int, default=15, help="rules printed")
    record.add_arguments(parser, "benchmarks/results/associations_bakery.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tables = public.read_bakery(args.bakery)
    baskets = data.baskets(tables["orders"], tables["order_items"])  # oldest first
    cut = int(len(baskets) * (1 - args.test_share))
    train, test = baskets.iloc[:cut], baskets.iloc[cut:]
    config = AssociationsConfig().rules()
    rules = model.mine(train, config)
    popular = model.popularity(train)
    completers = {
        "rules": lambda basket, k: model.complete(basket, rules, k, popular),
        "popularity": lambda basket, k: [p for p in popular.index if p not in basket][:k],
    }
    runs = [evaluate.completion_hit_rate(test, completers, args.k, seed) for seed in args.seeds]
    mean = {name: sum(r[name] for r in runs) / len(runs) for name in completers}

    print(f"\nBakery: {len(train):,} training baskets, {len(test):,} test baskets ({int(runs[0]['baskets']):,} with two products or more)")
    print(f"rules: {len(rules)} at support >= {config.min_support}, confidence >= {config.min_confidence}, lift >= {config.min_lift}")
    print(f"{'product':<24}{'associated':<24}{'support':>9}{'confidence':>11}{'lift':>7}")
    for r in rules.sort_values("lift", ascending=False).head(args.top).itertuples():
        print(f"{r.product_id:<24}{r.associated_product_id:<24}{r.support:>9.4f}{r.confidence:>11.3f}{r.lift:>7.2f}")
    print(f"\nleave-one-out completion, top {args.k}, mean over {len(args.seeds)} draws of the held-out product")
    for name, value in mean.items():
        print(f"  {name:<12}{value:>8.4f}  ({' '.join(f'{r[name]:.4f}' for r in runs)})")
    print(f"  rules vs popularity: {mean['rules'] / mean['popularity']:.3f}x")
    payload = {
        "train_baskets": len(train),
        "test_baskets": len(test),
        "thresholds": vars(config),
        "rules": rules.to_dict("records"),
        "hit_rate": mean,
        "runs": runs,
        "k": args.k,
    }
    metrics = {f"hit_rate_at_{args.k}.{name}": value for name, value in mean.items()} | {"rules": float(len(rules))}
    record.save(args, "associations bakery", payload, metrics, {"k": args.k, "test_share": args.test_share, **vars(config)})


if __name__ == "__main__":
    main()
