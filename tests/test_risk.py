"""Order risk: abuse in the synthetic shop, features that read only the past, labels that must mature, decisions
within the review budget, and held orders kept off the routes under dag.test."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.risk import data, decide, train
from ml.risk.pipeline import RiskConfig
from ml.sources import synthetic

REPO = Path(__file__).resolve().parent.parent
SHOP = synthetic.ShopConfig(n_customers=1_500, n_products=100, n_days=150, n_categories=6, abuse_rate=0.05)


@pytest.fixture(scope="module")
def shop() -> synthetic.Batch:
    return synthetic.simulate(synthetic.build_world(SHOP), SHOP.start, SHOP.end)


def test_abuse_is_added_on_its_own_streams_labelled_and_drifting(shop):
    clean = synthetic.simulate(synthetic.build_world(dataclasses.replace(SHOP, abuse_rate=0.0)), SHOP.start, SHOP.end)
    truth = shop.ground_truth["abuse"]
    orders = shop.tables["orders"]
    legit = orders[~orders["order_id"].isin(truth["order_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(legit, clean.tables["orders"])  # the legitimate shop is the same row for row
    assert "abuse" not in clean.ground_truth and clean.tables["chargebacks"]["reason"].eq("dispute").sum() + clean.tables["chargebacks"]["reason"].eq(
        "fraud"
    ).sum() == len(clean.tables["chargebacks"])
    assert 0.03 < len(truth) / len(orders) < 0.07
    assert set(truth["kind"]) == set(synthetic.abuse.PATTERNS)
    placed = orders.set_index("order_id")["order_ts"].dt.floor("D").reindex(truth["order_id"]).to_numpy()
    v2 = truth["variant"].eq("v2").to_numpy()
    assert v2.any() and placed[v2].min() > placed[~v2].min()  # the drifted variants come later
    assert set(shop.tables["customers"]["customer_id"]) >= set(orders["customer_id"])  # new accounts are customers
    labels = shop.tables["chargebacks"].merge(orders[["order_id", "order_ts"]], on="order_id")
    assert (labels["reported_ts"] - labels["order_ts"] >= pd.Timedelta(days=6)).all()
    assert orders[["device_id", "payment_id"]].notna().all().all()


def test_features_of_an_order_read_only_rows_before_it(shop):
    """Each order's features are the same when every later order (same day included) is cut from the history."""
    tables = shop.tables
    day = pd.Timestamp(SHOP.end - dt.timedelta(days=3), tz="UTC")
    full = data.order_features(tables["orders"], tables["order_items"], tables["customers"], [day]).set_index("order_id")
    sample = full.sort_values("order_ts").iloc[[0, len(full) // 2, -1]]
    for order_id, row in sample.iterrows():
        seen = tables["orders"][tables["orders"]["order_ts"] <= row["order_ts"]]
        cut = data.order_features(seen, tables["order_items"], tables["customers"], [day]).set_index("order_id")
        pd.testing.assert_series_equal(cut.loc[order_id, list(data.FEATURES)], full.loc[order_id, list(data.FEATURES)], check_names=False)


def test_training_reads_only_labels_matured_by_ds(shop):
    tables = {
        "orders": shop.tables["orders"],
        "items": shop.tables["order_items"],
        "customers": shop.tables["customers"],
        "chargebacks": shop.tables["chargebacks"],
    }
    ds = SHOP.end - dt.timedelta(days=20)
    config = RiskConfig(train_days=60, label_maturity_days=20, holdout_days=10)
    rows = train.labelled_rows(tables, ds, config)
    assert rows["order_ts"].max() < pd.Timestamp(ds - dt.timedelta(days=config.label_maturity_days), tz="UTC")
    late = tables["chargebacks"][tables["chargebacks"]["reported_ts"] >= train.known_at(ds)]
    labelled = set(rows.loc[rows["label"] == 1, "order_id"])
    assert late["order_id"].isin(rows["order_id"]).any() and not (labelled & set(late["order_id"]))
    disputes = tables["chargebacks"].loc[tables["chargebacks"]["reason"] == "dispute", "order_id"]
    assert not (labelled & set(disputes))


def test_decisions_fill_the_review_budget_and_hold_only_high_scores():
    scores = np.array([0.1, 0.95, 0.3, 0.7, 0.05, 0.99])
    out = decide.decisions(scores, budget=3, hold_score=0.9)
    assert list(out) == ["pass", "hold", "pass", "review", "pass", "hold"]
    assert (decide.decisions(scores, budget=0, hold_score=0.0) == "pass").all()


@pytest.mark.e2e
def test_held_orders_are_not_routed_under_dag_test(airflow_db, settings, shared_data):
    from airflow.dag_processing.dagbag import DagBag

    from ml import ingest, lake, serving
    from ml.sources import SourceRequest

    end = synthetic.scale_config("tiny").end
    ingest.run_day(dataclasses.replace(settings, abuse_rate=0.2), SourceRequest("synthetic", end, scale="tiny", backfill_days=89))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    when = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    # every order of ds is held (a budget larger than the day), so tomorrow's deliveries include held orders
    risk = {"ds": end.isoformat(), "label_maturity_days": 20, "holdout_days": 20, "min_labels": 5, "review_budget": 10_000, "hold_score": 0.0}
    run = bag.get_dag("ecom_risk").test(logical_date=when, run_conf=risk)
    assert str(run.state) == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    decisions = serving.read_ds(settings.serving_url, "order_risk", end)
    placed = lake.read_partition(settings.lake, "curated", "orders", end)
    assert set(decisions["order_id"]) == set(placed["order_id"]) and (decisions["decision"] == "hold").all()

    routing = {"ds": end.isoformat(), "time_limit_s": 2, "fleet_size": 1, "road_network": str(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2")}
    run = bag.get_dag("ecom_delivery_routing").test(logical_date=when, run_conf=routing)
    assert str(run.state) == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    tomorrow = placed[pd.to_datetime(placed["promised_date"]).dt.date == end + dt.timedelta(days=1)]
    assert len(tomorrow) > 0
    routes = serving.read_ds(settings.serving_url, "delivery_routes", end)
    exceptions = serving.read_ds(settings.serving_url, "delivery_exceptions", end).set_index("order_id")
    assert not set(tomorrow["order_id"]) & set(routes["order_id"].dropna())
    assert (exceptions.loc[list(tomorrow["order_id"]), "reason"] == "risk_hold").all()
    assert exceptions.loc[list(tomorrow["order_id"]), "detail"].str.startswith("held for fraud review: ").all()
    assert len(routes["order_id"].dropna()) > 0  # orders placed the days before (no decisions published) are routed


def test_recent_counts_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    orders = pd.DataFrame(
        {
            "key": pd.array(rng.choice(["a", "b", "c", None], 300), dtype="string"),
            "order_ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 5 * 24 * 60, 300), unit="min"),
        }
    )
    orders.loc[[5, 6], "key"], orders.loc[5, "order_ts"] = "a", orders.loc[6, "order_ts"]  # two orders at one moment
    expected = [
        np.nan
        if pd.isna(row.key)
        else float(((orders["key"] == row.key) & orders["order_ts"].between(row.order_ts - pd.Timedelta(hours=24), row.order_ts, inclusive="left")).sum())
        for row in orders.itertuples()
    ]
    np.testing.assert_array_equal(data._recent_count(orders, "key", 24).to_numpy(), np.array(expected))
