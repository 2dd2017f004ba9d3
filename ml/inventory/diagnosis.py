"""Why no plan exists: the elastic copy of the MILP prices every violation of budget, capacity and safety stock
in money and names the constraint families and SKUs that must give."""

from __future__ import annotations

from dataclasses import replace

import pulp

from ml.errors import PlanError
from ml.inventory.formulation import PlanConfig, WarehouseProblem, as_lp, build_model, economics, solve


def raise_infeasible(problem: WarehouseProblem, config: PlanConfig, what: str, status: str):
    diagnosis = diagnose(problem, config)
    raise PlanError(f"warehouse {problem.warehouse_id}: the replenishment MILP {what}; {diagnosis['message']}", status=status, diagnosis=diagnosis)


def diagnose(problem: WarehouseProblem, config: PlanConfig, relaxed: bool = False) -> dict:
    """Solve the elastic copy: the least-cost violation of budget, capacity and safety stock, as a message.
    ``relaxed`` solves its LP relaxation instead (seconds, the fallback when the elastic MILP finds nothing in
    time): its violations are the least any plan must make, lower bounds where cases and MOQs bind."""
    econ = economics(problem, config)
    model, v = build_model(problem, config, econ, elastic=True)
    solver = replace(config, time_limit_s=min(max(config.time_limit_s, 30.0), 120.0), gap=0.01)
    with as_lp(model, relax=relaxed):
        _, status, _ = solve(model, solver)
    if status == "no_solution" and not relaxed:
        return diagnose(problem, config, relaxed=True)  # the least violation even fractional cases must make
    if status == "infeasible":
        return {
            "families": [],
            "message": "even with budget, capacity and safety stock relaxed no plan exists (check MOQ / case-pack against the order-line cap)",
        }
    if status == "no_solution":
        return {"families": [], "message": f"the diagnosis itself found no answer within {solver.time_limit_s:g} s"}
    ids = problem.skus["product_id"].astype(str).to_numpy()
    findings, parts = [], []
    over_budget = pulp.value(v["slack_budget"]) if config.budget is not None else 0.0
    if over_budget and over_budget > 1e-6:
        findings.append({"family": "budget", "amount": float(over_budget)})
        short_by = f"at least {over_budget:,.2f}" if relaxed else f"{over_budget:,.2f}"
        parts.append(
            f"budget: {config.budget:,.2f} is {short_by} short of what safety stock at service level "
            f"{config.service_level:.0%} costs (raise the budget or lower the service level)"
        )
    cap = {problem.days[t].date().isoformat(): float(pulp.value(s)) for t, s in v["slack_capacity"].items() if pulp.value(s) > 1e-6}
    if cap:
        worst = max(cap, key=lambda day: cap[day])
        findings.append({"family": "capacity", "days": cap})
        parts.append(
            f"capacity: {problem.capacity_units:,.0f} units exceeded on {len(cap)} day(s), worst {worst} by "
            f"{cap[worst]:,.0f} (stock on hand + safety stock do not fit)"
        )
    short: dict[str, float] = {}
    for (i, _), s in v["slack_safety"].items():
        value = pulp.value(s) or 0.0
        if value > 0.01:
            short[ids[i]] = max(short.get(ids[i], 0.0), value)
    if short:
        top = sorted(short, key=lambda sku: short[sku], reverse=True)
        findings.append({"family": "safety_stock", "skus": {k: short[k] for k in top}})
        sample = ", ".join(f"{k} ({short[k]:,.1f} units)" for k in top[:5])
        parts.append(f"safety_stock: {len(short)} SKU(s) cannot hold their safety stock, e.g. {sample}")
    message = "; ".join(parts) or "no single constraint family explains it"
    return {"families": findings, "message": message}
