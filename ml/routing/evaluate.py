"""Checks and costs of a routing solution, independent of the solver that produced it.

``check`` replays every route on the problem's (or a finer) duration matrix: capacity, time windows, shift and
maximum duration. Benchmarks use it to score PyVRP and OR-Tools alike under one convention; tests use it to
catch a solver wrapper that misreads schedules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.routing.model import RoutingProblem


@dataclass(frozen=True)
class Check:
    feasible: bool
    violations: tuple[str, ...]
    cost: float  # sum of the cost matrix over every leg, depot to depot
    arrivals: tuple[tuple[float, ...], ...]  # per route, service start at each stop


def route_cost(routes: Sequence[Sequence[int]], cost: np.ndarray) -> float:
    """Sum of ``cost`` over each route's legs, depot (0) -> stops -> depot."""
    total = 0.0
    for stops in routes:
        path = [0, *stops, 0]
        total += float(cost[path[:-1], path[1:]].sum())
    return total


def check(
    problem: RoutingProblem, routes: Sequence[Sequence[int]], cost: np.ndarray | None = None, duration: np.ndarray | None = None, tolerance: float = 1e-6
) -> Check:
    """Replay ``routes`` (lists of stops 1..n) leaving the depot at the shift start and waiting for each window;
    every stop at most once. ``duration`` and ``cost`` default to the problem's own integer matrices."""
    duration = problem.duration if duration is None else duration
    cost = problem.distance if cost is None else cost
    fleet = problem.fleet
    violations: list[str] = []
    seen: set[int] = set()
    arrivals = []
    if len(routes) > fleet.vehicles:
        violations.append(f"{len(routes)} routes for {fleet.vehicles} vehicles")
    for number, stops in enumerate(routes):
        repeated = seen.intersection(stops)
        if repeated or len(set(stops)) < len(stops):
            violations.append(f"route {number} visits stops served elsewhere: {sorted(repeated) or stops}")
        seen.update(stops)
        load = float(problem.demand[list(stops)].sum())
        if load > fleet.capacity + tolerance:
            violations.append(f"route {number} carries {load:g} > capacity {fleet.capacity}")
        clock, previous, starts = float(fleet.shift_start), 0, []
        waited, slack = 0.0, np.inf  # Savelsbergh's forward time slack: how late the vehicle could leave instead
        for stop in stops:
            arrival = clock + float(duration[previous, stop])
            clock = max(arrival, float(problem.window_start[stop]))
            waited += clock - arrival
            slack = min(slack, waited + float(problem.window_end[stop]) - clock)
            if clock > problem.window_end[stop] + tolerance:
                violations.append(f"route {number} starts service at stop {stop} at {clock:g}, after its window ends ({problem.window_end[stop]:g})")
            starts.append(clock)
            clock += float(problem.service[stop])
            previous = stop
        back = clock + float(duration[previous, 0])
        if back > fleet.shift_end + tolerance:
            violations.append(f"route {number} returns at {back:g}, after the shift ends ({fleet.shift_end:g})")
        shortest = back - fleet.shift_start - max(0.0, min(slack, waited))
        if shortest > fleet.max_duration + tolerance:
            violations.append(f"route {number} lasts {shortest:g} at best, longer than the maximum {fleet.max_duration:g}")
        arrivals.append(tuple(starts))
    return Check(feasible=not violations, violations=tuple(violations), cost=route_cost(routes, cost), arrivals=tuple(arrivals))


def gap(cost: float, best_known: float) -> float:
    """Relative gap to a best-known cost (0.01 = 1% worse)."""
    return cost / best_known - 1.0
