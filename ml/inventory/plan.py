"""The daily replenishment plan: one MILP per warehouse over ds's forecast, its orders staged for the publish of
``purchase_orders``.

A warehouse whose plan is infeasible fails its task with the diagnosis (constraint family and SKUs) and nothing
is published for the ds, so the previous plan stays in place until the planner acts; the solver status and
MIP gap of every published plan are on its rows."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd

from ml.errors import EcomError
from ml.inventory import data, io
from ml.inventory.formulation import WarehouseProblem
from ml.inventory.model import plan_warehouse
from ml.inventory.pipeline import InventoryConfig
from ml.settings import Settings

log = logging.getLogger(__name__)


def warehouse_ids(forecasts: pd.DataFrame) -> list[str]:
    """The warehouses that a day's forecast covers, in a fixed order (their index is the staging shard)."""
    return sorted(forecasts["warehouse_id"].unique())


def problem_of(ds: dt.date, warehouse_id: str, forecasts: pd.DataFrame, snapshots: dict[str, pd.DataFrame]) -> WarehouseProblem:
    """One warehouse's planning inputs: its rows of ds's ``forecasts`` with the newest product, stock and
    warehouse snapshots."""
    mine = forecasts[forecasts["warehouse_id"] == warehouse_id]
    if mine.empty:
        raise EcomError(f"{io.FORECASTS}: ds={ds} has no rows for warehouse {warehouse_id!r}")
    [problem] = data.warehouse_problems(snapshots["products"], snapshots["inventory"], snapshots["warehouses"], mine)
    return problem


def plan_one(settings: Settings, ds: dt.date, warehouse_id: str, config: InventoryConfig) -> dict:
    """Plan one warehouse and stage its purchase orders; returns the solve's summary (raises PlanError when no
    plan exists, with the diagnosis)."""
    forecasts = io.load_forecasts(settings, ds)
    number = warehouse_ids(forecasts).index(warehouse_id)
    problem = problem_of(ds, warehouse_id, forecasts, io.load_snapshots(settings, ds))
    plan = plan_warehouse(problem, config.plan_config())
    rows = data.purchase_orders(ds, plan)
    unit_cost = problem.skus.set_index("product_id")["unit_cost"]
    io.stage_orders(settings, ds, number, rows.assign(ds=ds.isoformat()))
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
