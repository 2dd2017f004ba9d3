"""Planning inputs from contract tables: one ``WarehouseProblem`` per warehouse from the products' planning
fields, the newest stock snapshot and the ``demand_forecasts`` table; and the plan back as ``purchase_orders``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml import contract
from ml.errors import ContractError
from ml.inventory.formulation import WarehouseProblem
from ml.inventory.model import Plan

PLANNING_FIELDS = ("unit_cost", "price", "case_pack", "moq", "lead_time_days")
PURCHASE_ORDER_COLUMNS = tuple(contract.table("purchase_orders").column_names)


def _sample(values) -> list:
    return sorted(map(str, values))[:5]


def warehouse_problems(products: pd.DataFrame, inventory: pd.DataFrame, warehouses: pd.DataFrame, forecasts: pd.DataFrame) -> list[WarehouseProblem]:
    """Every warehouse with forecasts, its SKUs being the forecast products. Stock is the newest snapshot at or
    before the first forecast day (no row: nothing on hand). Raises naming the table, column and SKUs when a
    forecast product has no planning fields or the forecast horizon has holes."""
    planned = products.set_index(products["product_id"].astype(str))
    unknown = set(forecasts["product_id"].astype(str)) - set(planned.index)
    if unknown:
        raise ContractError(f"demand_forecasts: {len(unknown)} product(s) not in products, e.g. {_sample(unknown)}")
    for column in PLANNING_FIELDS:
        missing = planned.loc[forecasts["product_id"].astype(str).unique(), column].isna()
        if missing.any():
            raise ContractError(
                f"products.{column} is null for {int(missing.sum())} forecast product(s), e.g. "
                f"{_sample(missing.index[missing])}: the inventory plan needs it for every SKU it plans"
            )
    capacity = warehouses.set_index(warehouses["warehouse_id"].astype(str))["capacity_units"]
    problems = []
    for warehouse_id, fc in forecasts.groupby(forecasts["warehouse_id"].astype(str), sort=True):
        if warehouse_id not in capacity.index:
            raise ContractError(f"demand_forecasts: warehouse {warehouse_id!r} is not in warehouses")
        days = pd.date_range(fc["target_date"].min(), fc["target_date"].max(), freq="D")
        targets = pd.DatetimeIndex(fc["target_date"].drop_duplicates().sort_values())
        if len(targets) > 1 and (targets[1:] - targets[:-1]).days.min() >= 7:
            raise ContractError(
                f"demand_forecasts: warehouse {warehouse_id} is forecast per week ({days[0].date()}..{days[-1].date()}); the "
                "replenishment plan works day by day: forecast daily demand (frequency=daily) for the warehouses it plans"
            )
        wide = {q: fc.pivot_table(index="product_id", columns="target_date", values=q, aggfunc="first") for q in ("p10", "p50", "p90")}
        holes = wide["p50"].reindex(columns=days).isna().any(axis=1)
        if holes.any():
            raise ContractError(
                f"demand_forecasts: warehouse {warehouse_id} has days missing between {days[0].date()} and "
                f"{days[-1].date()} for {int(holes.sum())} product(s), e.g. {_sample(holes.index[holes])}"
            )
        ids = wide["p50"].index.astype(str)
        stock = _stock_at(inventory, warehouse_id, days[0]).reindex(ids, fill_value=0)
        skus = (
            planned.loc[ids, list(PLANNING_FIELDS)]
            .reset_index(names="product_id")
            .assign(on_hand=stock["on_hand"].to_numpy(float), on_order=stock["on_order"].to_numpy(float))
        )
        skus["moq"] = skus["moq"].astype(int)
        p10, p50, p90 = (wide[q].reindex(columns=days).to_numpy(float) for q in ("p10", "p50", "p90"))
        problems.append(WarehouseProblem(warehouse_id, skus, days, p10, p50, p90, capacity_units=float(capacity[warehouse_id])))
    return problems


def _stock_at(inventory: pd.DataFrame, warehouse_id: str, day: pd.Timestamp) -> pd.DataFrame:
    snapshot_day = pd.to_datetime(inventory["ds"], utc=True).dt.tz_localize(None).dt.normalize()  # naive or UTC dates
    mine = (inventory["warehouse_id"].astype(str) == warehouse_id) & (snapshot_day <= day)
    if not mine.any():
        return pd.DataFrame(columns=["on_hand", "on_order"], dtype=float)
    newest = inventory[mine & (snapshot_day == snapshot_day[mine].max())]
    return newest.set_index(newest["product_id"].astype(str))[["on_hand", "on_order"]].astype(float)


def purchase_orders(ds: dt.date, plan: Plan) -> pd.DataFrame:
    """The contract rows of one warehouse's plan: its order lines with their SKU's policy and the solve's status."""
    frame = plan.orders.merge(plan.skus, on="product_id", how="left")
    frame = frame.assign(
        ds=ds,
        warehouse_id=plan.warehouse_id,
        order_date=pd.to_datetime(frame["order_date"]).dt.date,
        arrival_date=pd.to_datetime(frame["arrival_date"]).dt.date,
        qty=frame["qty"].astype(np.int64),
        solver_status=plan.status,
        mip_gap=np.nan if plan.mip_gap is None else plan.mip_gap,
    )
    return frame[list(PURCHASE_ORDER_COLUMNS)]
