"""ecom_demand_forecast then ecom_inventory_plan end to end with dag.test() on the tiny shop: fit -> backtest ->
gate -> mapped forecasts -> publish, then one MILP per warehouse -> purchase orders; reruns replace their ds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ml import ingest, lake, serving
from ml.sources import SourceRequest
from ml.sources.synthetic import scale_config

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _run(dag, when: dt.datetime, conf: dict):
    run = dag.test(logical_date=when, run_conf=conf)
    states = {ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    return states


def test_forecast_then_plan_publish_one_set_of_rows_per_ds(airflow_db, settings):
    import mlflow
    from airflow.dag_processing.dagbag import DagBag

    end = scale_config("tiny").end
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny", backfill_days=89))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    when = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)

    conf = {"model": "lgbm", "horizon": 7, "origins": 2, "origin_step": 7, "shards": 2}
    for attempt, margin in enumerate((0.02, 0.9)):  # a 90% MASE cut is out of reach: the rerun must be rejected
        states = _run(bag.get_dag("ecom_demand_forecast"), when + dt.timedelta(minutes=attempt), conf | {"margin": margin})
        assert sum(k.startswith("forecast[") for k in states) == 2
    forecasts = serving.read_ds(settings.serving_url, "demand_forecasts", end)
    series = forecasts[["product_id", "warehouse_id"]].drop_duplicates()
    assert len(forecasts) == len(series) * 7 and not forecasts.duplicated(["product_id", "warehouse_id", "target_date"]).any()
    assert (forecasts["p10"] <= forecasts["p50"]).all() and (forecasts["p50"] <= forecasts["p90"]).all()
    assert set(forecasts["model_version"]) == {"1"}
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    rejected = client.get_model_version("ecom_demand_forecaster", "2")
    assert rejected.tags["gate.decision"] == "rejected" and float(rejected.tags["gate.champion_value"]) > 0
    run = client.get_run(rejected.run_id)
    assert "backtest.mase" in run.data.metrics and "backtest.seasonal_naive.mase" in run.data.metrics
    assert {a.path for a in client.list_artifacts(rejected.run_id, "evaluation")} >= {"evaluation/fan_chart.png"}

    # a warehouse run dry: the plan must order for it
    stock = lake.read_latest(settings.lake, "curated", "inventory", end)
    lake.write_partition(settings.lake, "curated", "inventory", end, stock.assign(on_hand=0, on_order=0))
    for attempt in range(2):
        states = _run(bag.get_dag("ecom_inventory_plan"), when + dt.timedelta(hours=1, minutes=attempt), {"service_level": 0.95})
        assert sum(k.startswith("solve[") for k in states) == series["warehouse_id"].nunique()
    orders = serving.read_ds(settings.serving_url, "purchase_orders", end)
    assert len(orders) > 0 and not orders.duplicated(["warehouse_id", "product_id", "order_date"]).any()
    assert set(orders["solver_status"]) <= {"optimal", "within_gap"} and (orders["qty"] > 0).all()
    assert set(orders["product_id"]) <= set(forecasts["product_id"])
