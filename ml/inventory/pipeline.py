"""ecom_inventory_plan, declared once: the warehouses of ds's forecast -> one replenishment MILP per warehouse
(mapped) -> publish ``purchase_orders``. The DAG, ``ecom plan`` and the Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.pipeline import (
    ITEMS,
    FanOut,
    Pipeline,
    PipelineConfig,
    Run,
    Step,
    newest_partition,
    option,
)

if TYPE_CHECKING:
    from ml.inventory.formulation import PlanConfig


@dataclass(frozen=True)
class InventoryConfig(PipelineConfig):
    service_level: float = option(0.95, "Cycle service level behind the safety stock", minimum=0.5, maximum=0.999)
    budget: float | None = option(None, "Purchase budget per warehouse over the horizon (empty: none)", minimum=0)
    time_limit_s: float = option(120.0, "Solver time limit per warehouse", exclusive_minimum=0, maximum=3600)
    gap: float = option(0.01, "Relative MIP gap at which the solver may stop", minimum=0, maximum=0.5)
    solver: str = option("highs", "MILP solver (HiGHS falls back to CBC when highspy is missing)", choices=("highs", "cbc"))

    def plan_config(self) -> PlanConfig:
        from ml.inventory.formulation import PlanConfig

        return PlanConfig(service_level=self.service_level, budget=self.budget, time_limit_s=self.time_limit_s, gap=self.gap, solver=self.solver)


def _warehouses(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.inventory import io, plan

    return {ITEMS: plan.warehouse_ids(io.load_forecasts(run.settings, run.ds))}


def _solve(run: Run, warehouse: str, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.inventory import plan

    return plan.plan_one(run.settings, run.ds, warehouse, run.config)


def _publish(run: Run, resolved: dict[str, Any], solved: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.inventory import io

    rows = io.publish(run.settings, run.ds, len(resolved[ITEMS]))
    return {"ds": run.ds.isoformat(), "rows": rows, "plans": list(solved)}


INVENTORY_PLAN = Pipeline(
    name="plan",
    dag_id="ecom_inventory_plan",
    doc=__doc__ or "",
    config=InventoryConfig,
    steps=(Step("warehouses", _warehouses),),
    fan_out=FanOut("solve", _solve),
    publish=_publish,
    outputs=("outputs/purchase_orders",),
    triggers=("outputs/demand_forecasts",),
    default_ds=newest_partition("outputs/demand_forecasts"),
    tags=("inventory",),
)
