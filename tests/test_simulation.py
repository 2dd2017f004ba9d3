"""The closed loop: the shop's response rules reward better decisions (and only through the truth), its passive day
replays the open-loop shop, and a tiny loop through the real pipelines reruns to the same figures."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import lake
from ml.errors import ConfigError
from ml.recsys.pipeline import RECOMMENDATIONS, RecsysConfig
from ml.settings import get_settings
from ml.simulation import loop, policies, report
from ml.simulation.pipeline import ABLATION_NAMES, POLICY_NAMES, SimulationConfig
from ml.simulation.shop import ClosedLoopShop, Decisions, id_index
from ml.sources import synthetic

REPO = Path(__file__).resolve().parent.parent
HISTORY_DAYS = 60


@pytest.fixture(scope="module")
def demo_shop():
    cfg = dataclasses.replace(synthetic.scale_config("demo", 3), abuse_rate=0.0)
    world = synthetic.build_world(cfg)
    return world, synthetic.simulate(world, cfg.start, cfg.start + dt.timedelta(days=HISTORY_DAYS - 1))


def _run(world, history, decide, days=14):
    """Total books of ``days`` days under ``decide(shop) -> Decisions``."""
    shop = ClosedLoopShop.after(world, copy.deepcopy(history))
    ledgers = [shop.day(decide(shop)).ledger for _ in range(days)]
    return {key: sum(day[key] for day in ledgers) for key in ("gross_profit", "revenue", "coupon_discount", "rec_units", "lost_units", "sessions_lost")}


def test_a_passive_day_is_the_open_loop_shop(demo_shop):
    """With no lists, no coupons, the shop's own (s, S) and stock to spare, the closed loop delivers exactly the
    rows the open-loop generator produces for the same day."""
    world, history = demo_shop
    stocked = copy.deepcopy(history)
    stocked.stock.on_hand += 10_000
    shop = ClosedLoopShop.after(world, stocked)
    results = [shop.day(Decisions()) for _ in range(3)]
    assert all(r.ledger["lost_units"] == 0 for r in results)
    assert all(r.ledger["rec_sessions"] == 0 and r.ledger["coupons_sent"] == 0 for r in results)
    open_loop = synthetic.simulate(world, results[0].day, results[-1].day).tables
    for table, key in (("orders", ["order_id"]), ("order_items", ["order_id", "product_id"]), ("events", ["session_id", "event_ts", "event_type"])):
        closed = pd.concat([r.tables[table] for r in results], ignore_index=True).sort_values(key, ignore_index=True)
        expected = open_loop[table].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(closed[expected.columns], expected, check_dtype=False)


def test_true_preference_is_the_share_of_views_the_shop_draws(demo_shop):
    """The response rules read ``synthetic.preference``: it must predict where the generator's own views land,
    complements included (a rule on taste alone misses the 35% of views that follow a complement)."""
    world, _ = demo_shop
    every = np.arange(world.cfg.n_products)
    observed, expected, taste_only = np.zeros(len(every)), np.zeros(len(every)), np.zeros(len(every))
    for i in range(HISTORY_DAYS, HISTORY_DAYS + 7):
        day = world.cfg.start + dt.timedelta(days=i)
        views = synthetic.simulate_day(world, i, day, materialize=True).events.query("event_type == 'view'")
        customers = id_index(views["customer_id"])
        observed += np.bincount(id_index(views["product_id"]), minlength=len(every))
        unique, inverse = np.unique(customers, return_inverse=True)
        discount = synthetic.discounts_on(world, day)
        share = synthetic.preference(world, discount, np.repeat(unique, len(every)), np.tile(every, len(unique))).reshape(len(unique), -1)
        expected += share[inverse].sum(axis=0)
        weight = world.popularity * (1.0 - discount) ** (-world.elasticity)
        within = weight / np.bincount(world.category_of, weights=weight)[world.category_of]
        taste_only += (np.diff(world.taste_cdf, axis=1, prepend=0.0)[unique][:, world.category_of] * within)[inverse].sum(axis=0)

    def chi2_per_product(model: np.ndarray) -> float:
        enough = model > 5
        return float((((observed - model) ** 2 / model)[enough]).sum() / enough.sum())

    assert expected.sum() == pytest.approx(observed.sum())
    assert chi2_per_product(expected) < 1.5 < 3.0 < chi2_per_product(taste_only)


def test_better_lists_sell_more(demo_shop):
    """The true-preference oracle earns more than the bestseller list, which earns more than no list at all."""
    world, history = demo_shop
    purchases = history.tables["events"].query("event_type == 'purchase'")
    bestsellers = policies.popularity_lists(purchases[purchases["event_ts"] >= purchases["event_ts"].max() - pd.Timedelta(days=28)], world.cfg.n_customers)
    none = _run(world, history, lambda shop: Decisions())
    popular = _run(world, history, lambda shop: Decisions(lists=bestsellers))
    oracle = _run(world, history, lambda shop: Decisions(lists=policies.oracle_lists(world, shop.today)))
    assert none["rec_units"] == 0 < popular["rec_units"] < oracle["rec_units"]
    assert none["gross_profit"] < popular["gross_profit"] < oracle["gross_profit"]


def test_targeted_coupons_earn_more_than_random_ones(demo_shop):
    """Coupons to the customers whose true uplift is highest pay off; as many coupons sent at random cost more in
    discounts than they bring."""
    world, history = demo_shop
    count = world.cfg.n_customers // 10

    def weekly(choose):
        def decide(shop):
            if shop.day_index % 7:
                return Decisions()
            customers, actions = choose(world, shop.day_index, count)
            return Decisions(coupon_customers=customers, coupon_actions=actions)

        return decide

    none = _run(world, history, lambda shop: Decisions())
    targeted = _run(world, history, weekly(policies.oracle_coupons))
    scattered = _run(world, history, weekly(policies.random_coupons))
    assert targeted["gross_profit"] > none["gross_profit"] > scattered["gross_profit"]
    assert scattered["coupon_discount"] > targeted["coupon_discount"] > 0
    assert scattered["sessions_lost"] > 0  # deep coupons drive some insensitive customers away


def test_sales_beyond_stock_are_lost(demo_shop):
    world, history = demo_shop
    emptied = copy.deepcopy(history)
    emptied.stock.on_hand[:] = 0
    emptied.stock.arrivals[:] = 0
    shop = ClosedLoopShop.after(world, emptied)
    nothing = np.zeros_like(emptied.stock.on_hand)
    result = shop.day(Decisions(replenishment=nothing))
    assert result.ledger["sold_units"] == 0 and result.ledger["lost_units"] == result.ledger["demand_units"] > 0
    assert result.tables["orders"].empty and result.tables["order_items"].empty
    assert not (result.tables["events"]["event_type"] == "purchase").any()
    assert result.ledger["revenue"] == 0 and result.ledger["holding_cost"] == 0


def test_a_wider_base_stock_margin_loses_fewer_sales_and_holds_more(demo_shop):
    """The passive shop's (s, S) margin is the knob tuned to the fill-rate target: it trades lost sales for holding."""
    world, history = demo_shop

    def books(safety: float):
        shop = ClosedLoopShop.after(world, copy.deepcopy(history))
        shop.stock.resize(world, safety)
        ledgers = [shop.day(Decisions()).ledger for _ in range(14)]
        return sum(d["lost_units"] for d in ledgers), sum(d["holding_cost"] for d in ledgers)

    (narrow_lost, narrow_holding), (wide_lost, wide_holding) = books(0.7), books(2.0)
    assert wide_lost < narrow_lost and wide_holding > narrow_holding


def test_late_deliveries_cost_returning_sessions(demo_shop):
    """A day on which no order is routed makes those customers skip some of their next sessions; on-time routes
    leave every session in place."""
    world, history = demo_shop

    def books(route_everything: bool):
        shop = ClosedLoopShop.after(world, copy.deepcopy(history))
        ledgers = []
        for _ in range(10):
            due = shop.due[shop.due["promised"] == shop.today]
            eta = pd.Timestamp(shop.today, tz="UTC") + pd.Timedelta(hours=8)
            routes = pd.DataFrame({"order_id": due["order_id"] if route_everything else [], "eta": eta, "leg_metres": 1000.0})
            ledgers.append(shop.day(Decisions(routes=routes)).ledger)
        return ledgers

    on_time, unrouted = books(True), books(False)
    assert sum(d["deliveries_late"] + d["deliveries_unrouted"] for d in on_time) == 0
    assert sum(d["sessions_lost"] for d in on_time) == 0
    assert sum(d["deliveries_unrouted"] for d in unrouted) == sum(d["deliveries_due"] for d in unrouted) > 0
    assert sum(d["sessions_lost"] for d in unrouted) > 0


def test_start_at_names_a_step():
    with pytest.raises(ConfigError, match="no step 'scoring'"):
        RECOMMENDATIONS.run(get_settings(), dt.date(2024, 1, 1), RecsysConfig(), start_at="scoring")


TINY_PARAMS = {
    "interventions": {"holdout_campaigns": 1, "snapshots": 3, "min_child_samples": 20},
    "forecast": {"horizon": 7, "origins": 1, "origin_step": 7},
    # stop on iterations, not on the clock, so that a rerun finds the same routes
    "routing": {"no_improvement": 2000, "time_limit_s": 120},
}


@pytest.mark.e2e
def test_tiny_loop_through_the_pipelines_reruns_identically(tmp_path, settings, airflow_db):
    """Two days of the tiny shop under the platform's champions and under the passive shop, twice: in worker processes
    (the benchmark's path), then through the ecom_simulation DAG (each policy a mapped task). The same seed gives the
    same books, the platform's decisions reached the shop, and the report holds every policy."""
    from airflow.dag_processing.dagbag import DagBag

    from ml.recsys import topk

    # As in the full suite, this process has run an OpenMP region before the workers start: a forked worker's next
    # parallel top-k then aborted, or skipped rows and ranked garbage item indices.
    topk.top_k_rows(np.random.default_rng(0).random((64, 512), dtype=np.float32), 10)
    config = SimulationConfig(scale="tiny", days=2, history_days=85, pipeline_params=json.dumps(TINY_PARAMS))
    first = loop.simulate(settings, config, tmp_path / "first", jobs=2, log_mlflow=False)
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("ecom_simulation")
    ds = dt.date(2025, 1, 1)
    run = dag.test(logical_date=dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC), run_conf=config.as_dict() | {"ds": ds.isoformat()})
    assert str(run.state) == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    again = json.loads((loop.simulation_folder(settings, ds, config) / "figures.json").read_text())
    runs, reruns = ({r["policy"]: {k: v for k, v in r.items() if k != "seconds"} for r in s["runs"]} for s in (first, again))
    assert runs == reruns
    platform = runs["platform"]
    assert platform["rec_sessions"] > 0 and platform["coupons_sent"] > 0
    planned = lake.list_partitions(tmp_path / "first" / "platform-seed42" / "lake", "outputs", "purchase_orders")
    assert planned == [dt.date(2024, 3, 25), dt.date(2024, 3, 26)]  # re-planned every day, the eve of each simulated day
    assert platform["deliveries_due"] == platform["deliveries_on_time"] + platform["deliveries_late"] + platform["deliveries_unrouted"]
    saved = json.loads((tmp_path / "first" / "figures.json").read_text())
    assert set(saved["policies"]) == {"platform", "passive"} and saved["platform_vs_passive"]["seeds"] == [42]
    assert "platform - passive" in (tmp_path / "first" / "report.html").read_text()


def test_simulation_params_are_checked_and_policy_names_match():
    assert set(POLICY_NAMES) == set(policies.POLICIES) and set(ABLATION_NAMES) == set(report.ABLATIONS)
    with pytest.raises(ConfigError, match="unknown pipeline"):
        SimulationConfig(pipeline_params='{"forcast": {"horizon": 7}}')
    with pytest.raises(ConfigError, match="not JSON"):
        SimulationConfig(pipeline_params="{horizon: 7}")
    with pytest.raises(ConfigError, match="do not fit"):
        loop.check_shop(SimulationConfig(scale="tiny", days=30, history_days=85))
    config = SimulationConfig(policies=("platform", "passive", "no_recs"), seeds=(1, 2), ablation_seeds=1)
    assert config.tasks() == [("platform", 1), ("passive", 1), ("no_recs", 1), ("platform", 2), ("passive", 2)]


def test_report_intervals_and_contributions():
    def run(policy, seed, profit):
        day = dict.fromkeys(report.SUMS, 1.0) | {"gross_profit": profit}
        return loop.PolicyRun(policy, seed, [day, day], {})

    summary = report.summarize(
        [run("platform", 1, 10.0), run("platform", 2, 12.0), run("passive", 1, 7.0), run("passive", 2, 8.0), run("no_recs", 1, 9.0)], {"days": 2}
    )
    assert summary["policies"]["platform"]["gross_profit"]["mean"] == 22.0
    diff = summary["platform_vs_passive"]
    assert diff["mean"] == 7.0 and diff["ci95"][0] < 7.0 < diff["ci95"][1] and diff["seeds"] == [1, 2]
    assert summary["contributions"]["recommendations"] == {"mean": 2.0, "ci95": None, "n": 1, "seeds": [1]}
    assert summary["contributions"]["coupons"] is None
