"""ecom_intervention: train propensity + uplift -> register -> gate -> plan tomorrow's actions.

Runs when ecom_ingest has refreshed the curated events, orders and coupon campaigns and the recommendations are
published, and on demand from the UI with Params (budget, caps, fatigue, learner). The uplift learner is
promoted to ``@champion`` only when its Qini coefficient on the held-out campaigns beats the champion's recipe
refitted on the same split by the margin; the plan always uses the champion. Logic lives in
``ml.intervention``; this file only wires tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import CURATED_ASSET_URIS, DAG_DEFAULTS, output_asset_uri

INPUTS = [Asset(uri=CURATED_ASSET_URIS[t], name=f"curated.{t}") for t in ("events", "orders", "coupon_campaigns")]
RECOMMENDATIONS = Asset(uri=output_asset_uri("recommendations"), name="outputs.recommendations")
INTERVENTIONS = Asset(uri=output_asset_uri("interventions"), name="outputs.interventions")


@dag(
    dag_id="ecom_intervention",
    schedule=[*INPUTS, RECOMMENDATIONS],
    tags=["ecom", "intervention"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Data date (default: newest curated events)"),
        "learner": Param("x", enum=["x", "t", "s"], description="Uplift learner: X-, T- or S-learner on LightGBM"),
        "budget": Param(500.0, type="number", minimum=0, description="Expected spend of the day's plan (discounts redeemed + contacts)"),
        "caps": Param([], type="array", items={"type": ["integer", "null"], "minimum": 0},
                      description="Most customers per action, in action order (empty: no caps)"),
        "fatigue_days": Param(14, type="integer", minimum=1, maximum=365, description="No second action within this many days"),
        "holdout_campaigns": Param(3, type="integer", minimum=1, maximum=52, description="Newest campaigns held out for the Qini"),
        "contact_cost": Param(0.05, type="number", minimum=0, description="Cost of sending one message"),
        "gate_margin": Param(0.02, type="number", minimum=0, maximum=0.99, description="Relative Qini gain to replace the champion"),
    },
)
def ecom_intervention():
    @task
    def plan() -> dict:
        from ml.intervention.train import InterventionConfig
        from ml.orchestration import pipeline_ds
        from ml.settings import get_settings

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        ds = pipeline_ds(get_settings(), params.get("ds"), run.logical_date, run.run_after, table="events")
        return {"ds": ds, "config": InterventionConfig.from_params(dict(params)).as_dict()}

    @task
    def train(planned: dict) -> dict:
        from ml.intervention import train as pipeline
        from ml.settings import get_settings

        return pipeline.train_run(get_settings(), planned["ds"], pipeline.InterventionConfig.from_params(planned["config"]))

    @task
    def register(trained: dict) -> dict:
        from ml.intervention import train as pipeline
        from ml.settings import get_settings

        return pipeline.register(get_settings(), trained)

    @task
    def gate(registered: dict) -> dict:
        from ml.intervention import train as pipeline
        from ml.settings import get_settings

        return pipeline.gate(get_settings(), registered)

    @task
    def champion(gated: dict) -> str:
        from ml.intervention import plan as actions
        from ml.settings import get_settings

        return actions.champion_version(get_settings())

    @task(outlets=[INTERVENTIONS])
    def target(planned: dict, version: str) -> dict:
        from ml.intervention import plan as actions
        from ml.intervention.train import InterventionConfig
        from ml.settings import get_settings

        return actions.plan_day(get_settings(), planned["ds"], InterventionConfig.from_params(planned["config"]), version)

    planned = plan()
    target(planned, champion(gate(register(train(planned)))))


ecom_intervention()
