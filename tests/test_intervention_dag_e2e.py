"""ecom_intervention end to end with dag.test() on the tiny shop: train -> register -> gate -> target, on two days;
the plan keeps the budget and the caps, skips customers nudged the day before, and a rerun replaces its ds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ml import ingest, lake, serving
from ml.sources import SourceRequest
from ml.sources.synthetic import scale_config

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _run(dag, when: dt.datetime, conf: dict):
    run = dag.test(logical_date=when, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states


def test_intervention_plans_within_budget_caps_and_fatigue_and_reruns_replace(airflow_db, settings):
    import mlflow
    from airflow.dag_processing.dagbag import DagBag

    end = scale_config("tiny").end
    day_before = end - dt.timedelta(days=1)
    ingest.run_day(settings, SourceRequest("synthetic", day_before, scale="tiny", backfill_days=88))
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny", backfill_days=0))
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("ecom_intervention")
    when = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    conf = {"budget": 25.0, "holdout_campaigns": 1, "fatigue_days": 14}

    _run(dag, when - dt.timedelta(days=1), conf | {"ds": day_before.isoformat(), "caps": [2, 3]})
    first = serving.read_ds(settings.serving_url, "interventions", day_before)
    assert 0 < len(first) <= 5
    assert (first["action"] == "coupon_5").sum() <= 2 and (first["action"] == "coupon_15").sum() <= 3
    assert first["expected_spend"].sum() <= 25.0 + 1e-6 and (first["expected_profit"] > 0).all()

    for attempt, margin in enumerate((0.02, 0.9)):
        # every Param set explicitly: dag.test() in one process keeps the previous run's conf as the defaults
        _run(dag, when + dt.timedelta(minutes=attempt), conf | {"ds": end.isoformat(), "caps": [], "gate_margin": margin})
        today = serving.read_ds(settings.serving_url, "interventions", end)
        assert len(today) > 0 and not today["customer_id"].duplicated().any()
        assert today["expected_spend"].sum() <= 25.0 + 1e-6
        assert not set(today["customer_id"]) & set(first["customer_id"]), "nudged yesterday: must rest"
        assert today["reason"].str.contains("pp chance to buy").all() and set(today["model_version"]) == {"1"}
    assert len(lake.read_partition(settings.lake, "outputs", "interventions", end)) == len(today)
    summary = json.loads(lake.read_text(settings.lake, "outputs", "interventions", end, "plan_summary.json"))
    assert summary["rows"] == len(today) and summary["fatigued"] >= len(first) and summary["solver_status"] == "optimal"

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    rejected = client.get_model_version("ecom_intervention", "3")
    assert rejected.tags["gate.decision"] == "rejected" and rejected.tags["gate.metric"] == "qini"
    run = client.get_run(rejected.run_id)
    assert {"propensity.roc_auc", "uplift.qini", "uplift.random_qini", "uplift.s_learner_qini"} <= set(run.data.metrics)
    # the default learner is auto: its choice per action, and the cross-validated Qini it chose by, are on the version
    assert rejected.tags["intervention.learner"] == "auto" and {rejected.tags[f"intervention.chosen.{a}"] for a in ("coupon_5", "coupon_15")} <= {"t", "x", "s"}
    assert {f"uplift.cv_qini.coupon_5.{kind}" for kind in ("t", "x", "s")} <= set(rejected.tags)
    artifacts = {a.path for a in client.list_artifacts(rejected.run_id, "evaluation")}
    assert {"evaluation/calibration.png", "evaluation/qini_coupon_5.png", "evaluation/qini_coupon_15.png"} <= artifacts
