"""ecom_demand_forecast: fit -> backtest beside seasonal naive -> register -> gate -> forecast shards (mapped) -> publish.

Runs when ecom_ingest has refreshed the curated orders, order lines and products, and on demand from the UI with
Params (model, horizon, backtest origins, ...). The method is backtested on rolling origins, logged to MLflow with
fan charts, and promoted to ``@champion`` only when its MASE beats the champion's on the same origins by the
margin; the daily P10/P50/P90 always come from the champion. Logic lives in ``ml.forecast``; this file only wires tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import CURATED_ASSET_URIS, DAG_DEFAULTS, output_asset_uri

INPUTS = [Asset(uri=CURATED_ASSET_URIS[t], name=f"curated.{t}") for t in ("orders", "order_items", "products")]
DEMAND_FORECASTS = Asset(uri=output_asset_uri("demand_forecasts"), name="outputs.demand_forecasts")


@dag(
    dag_id="ecom_demand_forecast",
    schedule=INPUTS,
    tags=["ecom", "forecast"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Data date (default: newest curated orders)"),
        "model": Param("lgbm", enum=["lgbm", "ets", "seasonal_naive"], description="Forecasting method to fit"),
        "horizon": Param(28, type="integer", minimum=1, maximum=365, description="Days ahead to forecast"),
        "origins": Param(3, type="integer", minimum=1, maximum=52, description="Rolling backtest origins"),
        "origin_step": Param(14, type="integer", minimum=1, maximum=365, description="Days between backtest origins"),
        "history_days": Param(730, type="integer", minimum=28, maximum=3650, description="Days of demand history to use"),
        "shards": Param(2, type="integer", minimum=1, maximum=256, description="Parallel forecasting tasks (by series)"),
        "margin": Param(0.02, type="number", minimum=0, maximum=0.99, description="Relative MASE cut to replace the champion"),
    },
)
def ecom_demand_forecast():
    @task
    def plan() -> dict:
        from ml.forecast.train import ForecastConfig
        from ml.orchestration import pipeline_ds
        from ml.settings import get_settings

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        ds = pipeline_ds(get_settings(), params.get("ds"), run.logical_date, run.run_after, table="orders")
        return {"ds": ds, "config": ForecastConfig.from_params(dict(params)).as_dict()}

    @task
    def train(planned: dict) -> dict:
        from ml.forecast import train as pipeline
        from ml.settings import get_settings

        return pipeline.train_run(get_settings(), planned["ds"], pipeline.ForecastConfig.from_params(planned["config"]))

    @task
    def backtest(trained: dict) -> dict:
        from ml.forecast import train as pipeline
        from ml.settings import get_settings

        return pipeline.evaluate_run(get_settings(), trained)

    @task
    def register(evaluated: dict) -> dict:
        from ml.forecast import train as pipeline
        from ml.settings import get_settings

        return pipeline.register(get_settings(), evaluated)

    @task
    def gate(registered: dict) -> dict:
        from ml.forecast import train as pipeline
        from ml.settings import get_settings

        return pipeline.gate(get_settings(), registered)

    @task
    def champion(gated: dict) -> str:
        from ml.forecast import score
        from ml.settings import get_settings

        return score.champion_version(get_settings())

    @task
    def shard_numbers(planned: dict) -> list[int]:
        return list(range(planned["config"]["shards"]))

    @task
    def forecast(shard: int, planned: dict, version: str) -> dict:
        from ml.forecast import score
        from ml.settings import get_settings

        config = planned["config"]
        return score.forecast_shard(get_settings(), planned["ds"], shard, config["shards"], version, config["history_days"])

    @task(outlets=[DEMAND_FORECASTS])
    def publish(planned: dict, version: str, forecasted: list[dict]) -> dict:
        from ml.forecast import score
        from ml.settings import get_settings

        rows = score.publish(get_settings(), planned["ds"], planned["config"]["shards"], version)
        return {"ds": planned["ds"], "rows": rows, "version": version, "series": sum(f["series"] for f in forecasted)}

    planned = plan()
    version = champion(gate(register(backtest(train(planned)))))
    forecasted = forecast.partial(planned=planned, version=version).expand(shard=shard_numbers(planned))
    publish(planned, version, forecasted)


ecom_demand_forecast()
