"""The daily replenishment plan on the lake: read ds's ``demand_forecasts`` (the forecast pipeline's output
table, never its code), the product master, stock and warehouses; solve one MILP per warehouse; write
``purchase_orders`` for the ds in one go.

A warehouse whose plan is infeasible fails its task with the diagnosis (constraint family and SKUs) and nothing
is published for the ds, so the previous plan stays in place until the planner acts; the solver status and
MIP gap of every published plan are on its rows."""

from __future__ import annotations

import json
import logging

import pandas as pd

from ml import lake, staging
from ml.dates import as_date
from ml.errors import EcomError
from ml.inventory import data
from ml.inventory.model import WarehouseProblem, plan_warehouse
from ml.inventory.pipeline import InventoryConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

TABLE = "purchase_orders"
FORECASTS = "demand_forecasts"


def load_forecasts(settings: Settings, ds: str) -> pd.DataFrame:
    try:
        forecasts = lake.read_partition(settings.lake_dir, "outputs", FORECASTS, ds)
    except EcomError as exc:
        raise EcomError(f"{FORECASTS}: no forecast for ds={as_date(ds)}; run ecom_demand_forecast for that day first") from exc
    return forecasts.assign(target_date=pd.to_datetime(forecasts["target_date"]), warehouse_id=forecasts["warehouse_id"].astype(str))


def warehouse_ids(settings: Settings, ds: str, forecasts: pd.DataFrame | None = None) -> list[str]:
    """The warehouses that ds's forecast covers, in a fixed order (their index is the staging shard)."""
    forecasts = load_forecasts(settings, ds) if forecasts is None else forecasts
    return sorted(forecasts["warehouse_id"].unique())


def load_problem(settings: Settings, ds: str, warehouse_id: str, forecasts: pd.DataFrame) -> WarehouseProblem:
    """One warehouse's planning inputs: its rows of ds's ``forecasts`` with the newest product, stock and
    warehouse snapshots."""
    mine = forecasts[forecasts["warehouse_id"] == warehouse_id]
    if mine.empty:
        raise EcomError(f"{FORECASTS}: ds={as_date(ds)} has no rows for warehouse {warehouse_id!r}")
    read = {t: lake.read_latest(settings.lake_dir, "curated", t, ds) for t in ("products", "inventory", "warehouses")}
    [problem] = data.warehouse_problems(read["products"], read["inventory"], read["warehouses"], mine)
    return problem


def plan_one(settings: Settings, ds: str, warehouse_id: str, config: InventoryConfig) -> dict:
    """Plan one warehouse and stage its purchase orders; returns the solve's summary (raises PlanError when no
    plan exists, with the diagnosis)."""
    forecasts = load_forecasts(settings, ds)
    number = warehouse_ids(settings, ds, forecasts).index(warehouse_id)
    problem = load_problem(settings, ds, warehouse_id, forecasts)
    plan = plan_warehouse(problem, config.plan_config())
    rows = data.purchase_orders(ds, plan)
    unit_cost = problem.skus.set_index("product_id")["unit_cost"]
    staging.stage(settings, TABLE, ds, number, rows.assign(ds=as_date(ds).isoformat()))
    summary = {
        "warehouse_id": warehouse_id,
        "status": plan.status,
        "mip_gap": plan.mip_gap,
        "solver": plan.solver,
        "objective": plan.objective,
        "seconds": round(plan.seconds, 2),
        "order_lines": len(rows),
        "units": int(rows["qty"].sum()),
        "spend": round(float((rows["qty"] * rows["product_id"].map(unit_cost)).sum()), 2),
        "skus": len(problem.skus),
        "advice": plan.advice,
    }
    log.info("plan for %s ds=%s: %s", warehouse_id, ds, json.dumps(summary))
    return summary


def publish(settings: Settings, ds: str, warehouses: int) -> int:
    """Gather every warehouse's staged orders and replace the ds's purchase orders; returns rows written."""
    return staging.publish(settings, TABLE, ds, warehouses)
