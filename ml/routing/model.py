"""The capacitated vehicle routing problem with time windows for one depot, solved with PyVRP.

Everything here is in integer units chosen by the caller (seconds and metres for road networks; scaled
Euclidean units for the Solomon and VRPLIB benchmarks): PyVRP works on integers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ml.errors import ConfigError

log = logging.getLogger(__name__)

NO_LIMIT = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Fleet:
    """Identical vehicles based at the depot."""

    vehicles: int
    capacity: int
    shift_start: int = 0
    shift_end: int = NO_LIMIT
    max_duration: int = NO_LIMIT  # longest route, depot to depot
    fixed_cost: int = 0  # added to the objective for each vehicle used

    def __post_init__(self):
        if self.vehicles < 1:
            raise ConfigError(f"a fleet needs at least one vehicle, got {self.vehicles}")
        if self.capacity < 1:
            raise ConfigError(f"vehicle capacity must be positive, got {self.capacity}")
        if self.shift_end <= self.shift_start:
            raise ConfigError(f"the shift ends ({self.shift_end}) before it starts ({self.shift_start})")


@dataclass(frozen=True)
class RoutingProblem:
    """Location 0 is the depot, 1..n the stops; matrices are (n+1) x (n+1) integers."""

    distance: np.ndarray
    duration: np.ndarray
    demand: np.ndarray
    service: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray
    fleet: Fleet
    minimise: Literal["distance", "duration"] = "distance"
    prize: np.ndarray | None = None  # None: every stop must be served; else stops are optional, worth this much

    def __post_init__(self):
        n = len(self.demand)
        for name in ("distance", "duration"):
            matrix = getattr(self, name)
            if matrix.shape != (n, n):
                raise ConfigError(f"{name} matrix has shape {matrix.shape}, expected {(n, n)} (depot + {n - 1} stops)")
            if (matrix < 0).any():
                raise ConfigError(f"{name} matrix has negative entries")
        for name in ("service", "window_start", "window_end") + (("prize",) if self.prize is not None else ()):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.minimise not in ("distance", "duration"):
            raise ConfigError(f"minimise must be 'distance' or 'duration', got {self.minimise!r}")

    @property
    def stops(self) -> int:
        return len(self.demand) - 1


@dataclass(frozen=True)
class Visit:
    stop: int  # 1..n
    arrival: int
    service_start: int  # arrival + waiting
    load: int  # on board when the vehicle arrives


@dataclass(frozen=True)
class Route:
    vehicle: int
    visits: tuple[Visit, ...]
    start: int  # leaves the depot
    end: int  # back at the depot
    distance: int
    duration: int

    @property
    def stops(self) -> list[int]:
        return [v.stop for v in self.visits]


@dataclass(frozen=True)
class RoutingSolution:
    routes: tuple[Route, ...]
    unserved: tuple[int, ...]
    cost: int
    feasible: bool
    seconds: float
    iterations: int = 0


def problem_data(problem: RoutingProblem):
    """The problem as PyVRP's ``ProblemData`` (matrices passed whole, not edge by edge)."""
    import pyvrp

    fleet = problem.fleet
    n = len(problem.demand)
    locations = [pyvrp.Location(0, 0) for _ in range(n)]
    depot = pyvrp.Depot(0, tw_early=int(fleet.shift_start), tw_late=int(fleet.shift_end))
    optional = problem.prize is not None
    clients = [
        pyvrp.Client(
            i,
            delivery=[int(problem.demand[i])],
            service_duration=int(problem.service[i]),
            tw_early=int(problem.window_start[i]),
            tw_late=int(problem.window_end[i]),
            prize=int(problem.prize[i]) if problem.prize is not None else 0,
            required=not optional,
        )
        for i in range(1, n)
    ]
    by_duration = problem.minimise == "duration"
    vehicle = pyvrp.VehicleType(
        num_available=int(fleet.vehicles),
        capacity=[int(fleet.capacity)],
        tw_early=int(fleet.shift_start),
        tw_late=int(fleet.shift_end),
        shift_duration=int(fleet.max_duration),
        fixed_cost=int(fleet.fixed_cost),
        unit_distance_cost=0 if by_duration else 1,
        unit_duration_cost=1 if by_duration else 0,
    )
    return pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=[depot],
        vehicle_types=[vehicle],
        # pyvrp's stub spells the matrix type ndarray[int, ...], which no numpy array matches
        distance_matrices=[np.ascontiguousarray(problem.distance, dtype=np.int64)],  # type: ignore[list-item]
        duration_matrices=[np.ascontiguousarray(problem.duration, dtype=np.int64)],  # type: ignore[list-item]
    )


def solve(problem: RoutingProblem, time_limit_s: float, seed: int = 0, no_improvement: int | None = None) -> RoutingSolution:
    """Solve with PyVRP's iterated local search for ``time_limit_s`` seconds (one core), or until
    ``no_improvement`` iterations in a row found nothing better."""
    import pyvrp
    from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement

    if time_limit_s <= 0:
        raise ConfigError(f"time_limit_s must be positive, got {time_limit_s}")
    started = time.perf_counter()
    if problem.stops == 0:
        return RoutingSolution(routes=(), unserved=(), cost=0, feasible=True, seconds=0.0)
    stop: MaxRuntime | MultipleCriteria = MaxRuntime(time_limit_s)
    if no_improvement:
        stop = MultipleCriteria([stop, NoImprovement(no_improvement)])
    result = pyvrp.solve(problem_data(problem), stop=stop, seed=seed, display=False)
    best = result.best
    routes = tuple(_route(problem, number, route) for number, route in enumerate(best.routes()))
    served = {v.stop for r in routes for v in r.visits}
    unserved = tuple(i for i in range(1, problem.stops + 1) if i not in served)
    solution = RoutingSolution(
        routes=routes,
        unserved=unserved,
        cost=int(result.cost()) if best.is_feasible() else -1,
        feasible=bool(best.is_feasible()),
        seconds=time.perf_counter() - started,
        iterations=int(result.num_iterations),
    )
    log.info(
        "PyVRP: %d stops on %d routes, %d unserved, cost %s, feasible=%s, %d iterations in %.1fs",
        problem.stops - len(unserved),
        len(routes),
        len(unserved),
        solution.cost,
        solution.feasible,
        solution.iterations,
        solution.seconds,
    )
    return solution


def _route(problem: RoutingProblem, number: int, route) -> Route:
    visits = []
    load = int(route.delivery()[0])
    previous, clock = 0, None
    for activity in route.schedule():
        if activity.is_depot():
            if clock is None:
                clock = int(activity.end_time)
            continue
        stop = int(activity.idx) + 1  # clients are numbered after the (single) depot
        if clock is None:
            raise RuntimeError("a PyVRP schedule that does not start at the depot")
        arrival = clock + int(problem.duration[previous, stop])
        visits.append(Visit(stop=stop, arrival=arrival, service_start=int(activity.start_time), load=load))
        load -= int(problem.demand[stop])
        previous, clock = stop, int(activity.end_time)
    return Route(
        vehicle=number,
        visits=tuple(visits),
        start=int(route.start_time()),
        end=int(route.end_time()),
        distance=int(route.distance()),
        duration=int(route.duration()),
    )
