"""ecom_recommendations end to end with dag.test() on the tiny shop: train -> gate -> mapped scoring -> publish, with
the blend, whose training chooses its mix and recency on a validation window before the holdout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ml import ingest, serving
from ml.recsys import train
from ml.sources import SourceRequest
from ml.sources.synthetic import scale_config

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _states(run) -> dict[str, str]:
    return {ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state) for ti in run.get_task_instances()}


def test_recommendations_dag_scores_everyone_once_with_the_champion(airflow_db, settings):
    from airflow.dag_processing.dagbag import DagBag

    end = scale_config("tiny").end
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny", backfill_days=89))
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("ecom_recommendations")
    conf = {"model": "blend", "k": 10, "shards": 3, "holdout_days": 14}
    when = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    # the rerun of the same ds must replace, not add; its 50% margin is out of reach, so the gate must reject it
    for attempt, margin in enumerate((0.01, 0.5)):
        run = dag.test(logical_date=when + dt.timedelta(minutes=attempt), run_conf=conf | {"margin": margin})
        states = _states(run)
        assert str(run.state) == "success", states
        assert sum(k.startswith("score[") for k in states) == 3
    rows = serving.read_ds(settings.serving_url, "recommendations", end)
    customers = scale_config("tiny").n_customers
    assert rows["customer_id"].nunique() >= customers * 0.9
    assert not rows.duplicated(["customer_id", "rank"]).any() and rows["rank"].max() == 10
    # the first run promoted version 1; the second did not beat it by 50%, so scoring kept loading version 1
    assert set(rows["model_version"]) == {"1"}
    import mlflow

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    assert client.get_model_version("ecom_recommender", "2").tags["gate.decision"] == "rejected"
    # the champion is the blend, with the setting its training chose on the validation window logged beside it
    champion = client.get_run(client.get_model_version("ecom_recommender", "1").run_id)
    assert champion.data.tags["recsys.model"] == "blend" and champion.data.params["recsys.blend_recency"] == "True"
    assert 0.0 <= champion.data.metrics["train.popularity_weight"] <= 1.0
    assert champion.data.metrics["train.query_decay"] in train.QUERY_DECAYS
    assert 0.0 < champion.data.metrics["train.validation_ndcg_at_10"] <= 1.0
    half_life = champion.data.metrics.get("train.idle_half_life", champion.data.params.get("train.idle_half_life"))
    assert half_life in ("None", *train.IDLE_HALF_LIVES[1:]), half_life
