"""Customers with one purchase: does frequently-bought-together beat recent regional popularity (the cold-start
fallback), and the model, for them?

    python benchmarks/recsys_one_purchase.py --test-days 56 --min-support 0.0002 --out benchmarks/results/recsys_one_purchase.json
    python benchmarks/recsys_one_purchase.py --instruments ../shared/data/recsys/amazon-musical-instruments-5core \
        --test-days 365 --popularity-days 365 --window-days 3650 --min-support 0.0005 --out ...

On the synthetic demo shop, or on Amazon Musical Instruments (real; a basket is what one customer reviewed on
one day, the only basket those reviews have), the cutoff is ``--test-days`` before the last day. Customers whose whole history before the cutoff holds exactly
one order, and who buy after it, are scored on the products they buy in the test days (NDCG@k and hit rate@k;
products they interacted with before are never offered, as in production). Methods, all fitted on the days before
the cutoff only:
- regional popularity: ``coldstart.popular_by_region`` over ``--popularity-days`` (production's fallback);
- rules: FP-growth rules of the ``ecom_associations`` defaults (``--min-support`` aside) on the orders of ``--window-days``, completing the
  customer's one basket (rule confidence as evidence, the products' basket share as the prior);
- EASE on every event type (the recommender a warm customer gets), scoring the customer's whole history.
Goal (issue 22): the rules beat regional popularity for these customers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import record

from ml.associations import data as basket_data
from ml.associations import model as rules_model
from ml.associations.pipeline import AssociationsConfig
from ml.recsys import baselines, coldstart
from ml.recsys import data as recsys_data
from ml.sources import public, synthetic

log = logging.getLogger("recsys_one_purchase")


def ndcg_hit(lists: dict[str, list[str]], truth: dict[str, set[str]], k: int) -> dict[str, float]:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, hit = [], []
    for customer, wanted in truth.items():
        got = lists[customer][:k]
        gains = np.array([p in wanted for p in got], dtype=float)
        ideal = discounts[: min(len(wanted), k)].sum()
        ndcg.append(float((gains * discounts[: len(gains)]).sum() / ideal))
        hit.append(float(gains.any()))
    return {"ndcg": float(np.mean(ndcg)), "hit_rate": float(np.mean(hit))}


def load(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Events, orders, order lines, customers and product ids of the chosen data."""
    if args.instruments is None:
        cfg = dataclasses.replace(synthetic.SCALES["demo"], seed=args.seed)
        tables = synthetic.simulate(synthetic.build_world(cfg), cfg.start, cfg.end).tables
        return tables["events"], tables["orders"], tables["order_items"], tables["customers"], tables["products"]["product_id"].to_numpy(dtype=str)
    tables = public.read_amazon_instruments(args.instruments)
    bought = tables["events"][tables["events"]["event_type"] == "purchase"]
    orders = bought.groupby("session_id", as_index=False).agg(customer_id=("customer_id", "first"), order_ts=("event_ts", "min"))
    items = bought[["session_id", "product_id"]].drop_duplicates().assign(discount=0.0)
    return (
        tables["events"],
        orders.rename(columns={"session_id": "order_id"}),
        items.rename(columns={"session_id": "order_id"}),
        tables["customers"],
        tables["products"]["product_id"].to_numpy(dtype=str),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42, help="synthetic shop seed")
    parser.add_argument("--instruments", type=Path, help="the amazon-musical-instruments-5core folder, instead of the synthetic shop")
    parser.add_argument("--test-days", type=int, default=28)
    parser.add_argument("--popularity-days", type=int, default=28)
    parser.add_argument("--window-days", type=int, default=AssociationsConfig().window_days)
    parser.add_argument("--min-support", type=float, default=AssociationsConfig().min_support)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ease-l2", type=float, default=200.0)
    record.add_arguments(parser, "benchmarks/results/recsys_one_purchase.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    events, orders, items, customers, product_ids = load(args)
    last_day = events["event_ts"].max().floor("D")
    cutoff = last_day - pd.Timedelta(days=args.test_days - 1)
    before, after = events[events["event_ts"] < cutoff], events[events["event_ts"] >= cutoff]
    past_orders = orders[orders["order_ts"] < cutoff]
    one = past_orders.groupby("customer_id").size().loc[lambda n: n == 1].index
    bought_after = after[after["event_type"] == "purchase"].groupby("customer_id")["product_id"].apply(set)
    seen = before.groupby("customer_id")["product_id"].apply(set)
    truth = {c: bought_after[c] - seen.get(c, set()) for c in one.intersection(bought_after.index)}
    truth = {c: wanted for c, wanted in truth.items() if wanted}
    basket_of = basket_data.baskets(past_orders[past_orders["customer_id"].isin(truth)], items).rename(index=past_orders.set_index("order_id")["customer_id"])
    log.info("%d customers with one order before %s who buy something new in the %d test days", len(truth), cutoff.date(), args.test_days)

    window = past_orders[past_orders["order_ts"] >= cutoff - pd.Timedelta(days=args.window_days)]
    baskets = basket_data.baskets(window, items)
    rules = rules_model.mine(baskets, dataclasses.replace(AssociationsConfig().rules(), min_support=args.min_support))
    shares = rules_model.popularity(baskets)
    recent = before[before["event_ts"] >= cutoff - pd.Timedelta(days=args.popularity_days)]
    regional = coldstart.popular_by_region(recent, customers, product_ids, args.k + 200)
    region_of = customers.set_index("customer_id")["region"]
    region_lists = {r: rows.sort_values("rank")["product_id"].tolist() for r, rows in regional.groupby("region", dropna=False)}

    def unseen(products: list[str], customer: str) -> list[str]:
        return [p for p in products if p not in seen.get(customer, set())][: args.k]

    lists: dict[str, dict[str, list[str]]] = {name: {} for name in ("regional popularity", "rules", "EASE")}
    item_ids = np.sort(before["product_id"].unique())
    users = np.sort(before["customer_id"].unique())
    ease = baselines.EASE(recsys_data.interaction_matrix(before, users, item_ids), args.ease_l2)
    position = pd.Series(np.arange(len(users)), index=users)
    for customer in truth:
        basket = list(basket_of.loc[[customer]].iloc[0])
        popular = region_lists[region_of.get(customer)]
        lists["regional popularity"][customer] = unseen(popular, customer)
        lists["rules"][customer] = unseen(rules_model.complete(basket, rules, args.k + 50, shares), customer)
        scores = ease.score(np.array([position[customer]]))[0]
        scores[np.isin(item_ids, list(seen.get(customer, set())))] = -np.inf
        lists["EASE"][customer] = item_ids[np.argsort(-scores, kind="stable")[: args.k]].tolist()

    results = {name: ndcg_hit(found, truth, args.k) for name, found in lists.items()}
    print(f"\n{len(truth):,} one-purchase customers; {len(rules)} rules from {len(baskets):,} baskets of {args.window_days} days; top {args.k}")
    print(f"{'method':<34}{'NDCG':>8}{'hit rate':>10}")
    for name, r in results.items():
        print(f"{name:<34}{r['ndcg']:>8.4f}{r['hit_rate']:>10.4f}")
    base = results["regional popularity"]["ndcg"]
    print(f"rules vs regional popularity: {results['rules']['ndcg'] / base:.3f}x NDCG; EASE: {results['EASE']['ndcg'] / base:.3f}x")
    payload = {
        "data": "synthetic demo" if args.instruments is None else "amazon instruments",
        "customers": len(truth),
        "rules": len(rules),
        "cutoff": str(cutoff.date()),
        "results": results,
        "k": args.k,
    }
    metrics = {f"{m}.{name.replace(' ', '_')}": r[m] for name, r in results.items() for m in ("ndcg", "hit_rate")}
    record.save(
        args,
        "recsys one purchase",
        payload,
        metrics,
        {"data": payload["data"], "seed": args.seed, "test_days": args.test_days, "k": args.k, "min_support": args.min_support},
    )


if __name__ == "__main__":
    main()
