"""ecom_recommendations: train (GPU queue) -> evaluate -> register -> gate -> score shards (mapped) -> publish.

Runs when ecom_ingest has refreshed the curated events, customers and products, and on demand from the UI with
Params (model, epochs, K, ...). The model is evaluated on a temporal holdout beside recent popularity, registered
in MLflow and promoted to ``@champion`` only when it beats the champion by the margin; scoring always uses the
champion. Logic lives in ``ml.recsys``; this file only wires tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import CURATED_ASSET_URIS, DAG_DEFAULTS, output_asset_uri

INPUTS = [Asset(uri=CURATED_ASSET_URIS[t], name=f"curated.{t}") for t in ("events", "customers", "products")]
RECOMMENDATIONS = Asset(uri=output_asset_uri("recommendations"), name="outputs.recommendations")


@dag(
    dag_id="ecom_recommendations",
    schedule=INPUTS,
    tags=["ecom", "recommendations", "gpu"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Data date (default: newest curated events)"),
        "model": Param("sasrec", enum=["sasrec", "ease", "popularity"], description="Model to train"),
        "epochs": Param(30, type="integer", minimum=1, maximum=500, description="SASRec: most epochs (early stopping)"),
        "k": Param(100, type="integer", minimum=1, maximum=1000, description="Recommendations per customer"),
        "shards": Param(4, type="integer", minimum=1, maximum=256, description="Parallel scoring tasks"),
        "holdout_days": Param(14, type="integer", minimum=1, maximum=180, description="Temporal holdout length"),
        "margin": Param(0.01, type="number", minimum=0, maximum=1, description="Relative NDCG@10 gain to replace the champion"),
    },
)
def ecom_recommendations():
    @task
    def plan() -> dict:
        from ml.orchestration import pipeline_ds
        from ml.recsys.train import RecsysConfig
        from ml.settings import get_settings

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        ds = pipeline_ds(get_settings(), params.get("ds"), run.logical_date, run.run_after)
        return {"ds": ds, "config": RecsysConfig.from_params(dict(params)).as_dict()}

    @task(queue="gpu")
    def train(planned: dict) -> dict:
        from ml.recsys import train as pipeline
        from ml.settings import get_settings

        return pipeline.train_run(get_settings(), planned["ds"], pipeline.RecsysConfig.from_params(planned["config"]))

    @task
    def evaluate(trained: dict) -> dict:
        from ml.recsys import train as pipeline
        from ml.settings import get_settings

        return pipeline.evaluate_run(get_settings(), trained)

    @task
    def register(evaluated: dict) -> dict:
        from ml.recsys import train as pipeline
        from ml.settings import get_settings

        return pipeline.register(get_settings(), evaluated)

    @task
    def gate(registered: dict) -> dict:
        from ml.recsys import train as pipeline
        from ml.settings import get_settings

        return pipeline.gate(get_settings(), registered)

    @task
    def champion(gated: dict) -> str:
        from ml.recsys import score
        from ml.settings import get_settings

        return score.champion_version(get_settings())

    @task
    def shard_numbers(planned: dict) -> list[int]:
        return list(range(planned["config"]["shards"]))

    @task
    def score(shard: int, planned: dict, version: str) -> dict:
        from ml.recsys import score as scoring
        from ml.settings import get_settings

        config = planned["config"]
        return scoring.score_shard(get_settings(), planned["ds"], shard, config["shards"], version, config["k"],
                                   config["popularity_days"], config["history_days"])

    @task(outlets=[RECOMMENDATIONS])
    def publish(planned: dict, version: str, scored: list[dict]) -> dict:
        from ml.recsys import score as scoring
        from ml.settings import get_settings

        rows = scoring.publish(get_settings(), planned["ds"], planned["config"]["shards"], version)
        return {"ds": planned["ds"], "rows": rows, "version": version, "customers": sum(s["customers"] for s in scored)}

    planned = plan()
    version = champion(gate(register(evaluate(train(planned)))))
    scored = score.partial(planned=planned, version=version).expand(shard=shard_numbers(planned))
    publish(planned, version, scored)


ecom_recommendations()
