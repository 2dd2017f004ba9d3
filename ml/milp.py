"""Solving a PuLP model with HiGHS (CBC as fallback) and reading back an honest status: ``optimal``,
``within_gap`` (stopped at the requested MIP gap), ``time_limit`` (stopped by the clock with a solution),
``no_solution`` or ``infeasible``, with the relative gap the solver proved. Shared by every planning pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pulp

log = logging.getLogger(__name__)

SOLVERS = ("highs", "cbc")


def _highs_with_start(start: dict[str, float] | None, **options):
    """PuLP's HiGHS interface, handing HiGHS a starting solution (PuLP's own has no warm start for it)."""

    class HiGHSWithStart(pulp.HiGHS):
        def callSolver(self, lp):
            if start:
                import highspy

                solution = highspy.HighsSolution()
                values = [0.0] * lp.solverModel.getNumCol()
                for var in lp.variables():
                    values[var.index] = start.get(var.name, 0.0)
                solution.col_value, solution.value_valid = values, True
                lp.solverModel.setSolution(solution)
            super().callSolver(lp)

    return HiGHSWithStart(**options)


def solve(
    model: pulp.LpProblem,
    solver: str = "highs",
    time_limit_s: float = 60.0,
    gap: float = 0.01,
    threads: int | None = None,
    start: dict[str, float] | None = None,
) -> tuple[str, str, float | None]:
    """Solve ``model`` and return (solver used, status, relative gap), the status read from the solver itself."""
    if solver == "highs" and pulp.HiGHS().available():
        model.solve(_highs_with_start(start, msg=False, timeLimit=time_limit_s, gapRel=gap, threads=threads))
        return ("highs", *_highs_status(model.solverModel))
    if solver == "highs":
        log.warning("highspy is not installed: solving with CBC")
    if start:
        for var in model.variables():
            var.setInitialValue(start.get(var.name, 0.0))
    model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=gap, threads=threads, warmStart=bool(start)))
    return ("cbc", *_cbc_status(model))


def relaxation_prices(model: pulp.LpProblem, solver: str = "highs", time_limit_s: float = 60.0) -> dict[str, float]:
    """The dual prices (>= 0, by constraint name) of ``model``'s LP relaxation, or none when it did not solve.
    HiGHS uses its interior point method, many times faster than simplex on these wide assignment LPs."""
    if solver == "highs" and pulp.HiGHS().available():
        model.solve(pulp.HiGHS(mip=False, msg=False, timeLimit=time_limit_s, solver="ipm"))
    else:
        model.solve(pulp.PULP_CBC_CMD(mip=False, msg=False, timeLimit=time_limit_s))
    if model.status != pulp.LpStatusOptimal:
        log.warning("the LP relaxation did not solve (%s): no prices", pulp.LpStatus[model.status])
        return {}
    return {name: abs(constraint.pi or 0.0) for name, constraint in model.constraints.items()}


def _highs_status(highs) -> tuple[str, float | None]:
    import highspy

    status, info = highs.getModelStatus(), highs.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    gap = float(info.mip_gap) if np.isfinite(info.mip_gap) else None
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return "infeasible", None
    if not has_solution:
        return "no_solution", None
    if status == highspy.HighsModelStatus.kOptimal:
        return ("optimal" if gap is None or gap <= 1e-6 else "within_gap"), (gap or 0.0)
    return ("time_limit" if status == highspy.HighsModelStatus.kTimeLimit else highs.modelStatusToString(status)), gap


def _cbc_status(model: pulp.LpProblem) -> tuple[str, float | None]:
    """CBC through PuLP reports no gap; a stop short of proven optimality is reported as a time-limit stop."""
    if model.status == pulp.LpStatusInfeasible:
        return "infeasible", None
    if model.sol_status == pulp.LpSolutionOptimal:
        return "within_gap", None
    if model.sol_status == pulp.LpSolutionIntegerFeasible:
        return "time_limit", None
    return "no_solution", None
