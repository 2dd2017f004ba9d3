"""ecom_inventory_plan: one replenishment MILP per warehouse (mapped) -> publish purchase_orders.

Runs when ecom_demand_forecast publishes a forecast, and on demand from the UI with Params (service level,
budget, solver time limit). Each warehouse's task reports its solver status and MIP gap; an infeasible plan
fails its task with the diagnosis (constraint family and SKUs) and the ds keeps its previous purchase orders.
Logic lives in ``ml.inventory``; this file only wires tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import DAG_DEFAULTS, output_asset_uri

DEMAND_FORECASTS = Asset(uri=output_asset_uri("demand_forecasts"), name="outputs.demand_forecasts")
PURCHASE_ORDERS = Asset(uri=output_asset_uri("purchase_orders"), name="outputs.purchase_orders")


@dag(
    dag_id="ecom_inventory_plan",
    schedule=[DEMAND_FORECASTS],
    tags=["ecom", "inventory"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Forecast date (default: newest demand forecast)"),
        "service_level": Param(0.95, type="number", minimum=0.5, maximum=0.999, description="Cycle service level for safety stock"),
        "budget": Param(None, type=["null", "number"], minimum=0, description="Purchase budget per warehouse over the horizon (empty: none)"),
        "time_limit_s": Param(120, type="number", exclusiveMinimum=0, maximum=3600, description="Solver time limit per warehouse"),
        "gap": Param(0.01, type="number", minimum=0, maximum=0.5, description="Relative MIP gap at which the solver may stop"),
    },
)
def ecom_inventory_plan():
    @task
    def plan() -> dict:
        from ml.inventory.plan import InventoryConfig, warehouse_ids
        from ml.orchestration import pipeline_ds
        from ml.settings import get_settings

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        settings = get_settings()
        ds = pipeline_ds(settings, params.get("ds"), run.logical_date, run.run_after, table="demand_forecasts", zone="outputs")
        return {"ds": ds, "config": InventoryConfig.from_params(dict(params)).as_dict(), "warehouses": warehouse_ids(settings, ds)}

    @task
    def warehouses(planned: dict) -> list[str]:
        return planned["warehouses"]

    @task
    def solve(warehouse: str, planned: dict) -> dict:
        from ml.inventory.plan import InventoryConfig, plan_one
        from ml.settings import get_settings

        return plan_one(get_settings(), planned["ds"], warehouse, InventoryConfig.from_params(planned["config"]))

    @task(outlets=[PURCHASE_ORDERS])
    def publish(planned: dict, solved: list[dict]) -> dict:
        from ml.inventory.plan import publish as write
        from ml.settings import get_settings

        rows = write(get_settings(), planned["ds"], len(planned["warehouses"]))
        return {"ds": planned["ds"], "rows": rows, "plans": list(solved)}

    planned = plan()
    solved = solve.partial(planned=planned).expand(warehouse=warehouses(planned))
    publish(planned, solved)


ecom_inventory_plan()
