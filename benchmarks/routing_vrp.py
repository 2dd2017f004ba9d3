"""PyVRP (the pipeline's solver wrapper) against OR-Tools routing on the same Solomon VRPTW and VRPLIB CVRP
instances, the same time limit and one core each, scored by one checker (``ml.routing.evaluate.check``).

    python benchmarks/routing_vrp.py --instances ../shared/data/vrp/solomon/C101.txt \\
        ../shared/data/vrp/solomon/R101.txt ../shared/data/vrp/solomon/RC101.txt \\
        ../shared/data/vrp/cvrp_x/X-n101-k25.vrp --bks ../shared/data/vrp/solomon/BKS_subset.json \\
        --time-limit 9.5 --out benchmarks/results/routing_vrp.json

Rounding convention (one per file format, each the convention of its best-known value):
- Solomon (``.txt``): the solver works on Euclidean distances and travel times scaled by 100 and rounded UP to
  integers (so every schedule the solver accepts stays feasible in exact arithmetic); the reported cost is the
  unrounded Euclidean length of the returned routes, as in BKS_subset.json's ``<name>_distance`` entries
  (pure distance minimisation with up to 25 vehicles, e.g. C101 828.94); feasibility is checked on the
  unrounded times.
- VRPLIB ``EUC_2D`` CVRP (``.vrp``, ``TYPE : CVRP``): TSPLIB's nearest-integer distances for solver and cost
  alike, as the best-known cost in the ``.sol`` file beside the instance (X-n101-k25: 27591); fleet unlimited.
- VRPLIB VRPTW (``TYPE : VRPTW``, e.g. Gehring & Homberger): the DIMACS convention of its best-known costs,
  distances and travel times truncated to one decimal, with the file's time windows, service times and
  ``VEHICLES``; cost = total distance.

A VRPLIB file is read by ``vrplib`` for the solvers and again by a plain-text reader of this script for the
checker, so a solution is checked against the file as written. A TYPE or section this benchmark does not model
(pickups, backhauls, release times, other edge weights) is refused with the file and the section named.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import record

from ml.routing.evaluate import check, gap
from ml.routing.model import Fleet, RoutingProblem, solve

SOLOMON_SCALE = 100


def euclidean(coords: np.ndarray) -> np.ndarray:
    return np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1))


SUPPORTED = {
    "CVRP": {"name", "type", "comment", "dimension", "capacity", "edge_weight_type", "node_coord", "demand", "depot", "edge_weight"},
    "VRPTW": {
        "name",
        "type",
        "comment",
        "dimension",
        "capacity",
        "vehicles",
        "service_time",
        "edge_weight_type",
        "node_coord",
        "demand",
        "time_window",
        "depot",
        "edge_weight",
    },
}
"""What this benchmark reads from a VRPLIB file, per TYPE; anything else in the file is refused, never dropped."""
DIMACS_SCALE = 10  # VRPTW in VRPLIB format: DIMACS convention, distances and durations truncated to one decimal


def truncated_tenths(coords: np.ndarray) -> np.ndarray:
    """Euclidean distances in tenths, truncated (DIMACS); the epsilon keeps an exact x.y from flooring to x.y - 0.1."""
    return np.floor(euclidean(coords) * DIMACS_SCALE + 1e-7)


def read_instance(path: Path, bks_file: Path | None) -> tuple[RoutingProblem, np.ndarray, np.ndarray, float]:
    """(problem in solver units, exact cost matrix, exact duration matrix, best-known cost) for one file."""
    import vrplib

    if path.suffix == ".vrp":
        inst = vrplib.read_instance(path)
        kind = str(inst.get("type", "")).upper()
        if kind not in SUPPORTED:
            raise SystemExit(f"{path}: TYPE {kind or '(none)'} is not supported; this benchmark reads {sorted(SUPPORTED)}")
        unsupported = sorted(set(inst) - SUPPORTED[kind])
        if unsupported:
            raise SystemExit(f"{path}: {kind} with {unsupported} is not supported: refusing rather than solving without them")
        if inst["edge_weight_type"] != "EUC_2D":
            raise SystemExit(f"{path}: EDGE_WEIGHT_TYPE {inst['edge_weight_type']} is not supported (EUC_2D only)")
        if int(np.asarray(inst["depot"]).ravel()[0]) != 0:
            raise SystemExit(f"{path}: the depot must be the first node")
        sol = path.with_suffix(".sol")
        if not sol.exists():
            raise SystemExit(f"{path}: no best-known solution file {sol}")
        best_known = float(vrplib.read_solution(sol)["cost"])
        return (*vrplib_problem(inst), best_known)
    inst = vrplib.read_instance(path, instance_format="solomon")
    exact = euclidean(inst["node_coord"])
    scaled = np.ceil(exact * SOLOMON_SCALE - 1e-9).astype(np.int64)
    windows = (inst["time_window"] * SOLOMON_SCALE).astype(np.int64)
    problem = RoutingProblem(
        distance=scaled,
        duration=scaled,
        demand=inst["demand"].astype(np.int64),
        service=(inst["service_time"] * SOLOMON_SCALE).astype(np.int64),
        window_start=windows[:, 0],
        window_end=windows[:, 1],
        fleet=Fleet(vehicles=int(inst["vehicles"]), capacity=int(inst["capacity"]), shift_start=int(windows[0, 0]), shift_end=int(windows[0, 1])),
    )
    if bks_file is None:
        raise SystemExit(f"{path}: Solomon instances need --bks (best-known costs)")
    bks = json.loads(bks_file.read_text())
    name = path.stem
    entry = bks.get(f"{name}_distance") or bks.get(name)
    if entry is None:
        raise SystemExit(f"{bks_file} has no best-known cost for {name}")
    return problem, exact, exact * SOLOMON_SCALE, float(entry["best_known_cost"])


def vrplib_problem(inst: dict) -> tuple[RoutingProblem, np.ndarray, np.ndarray]:
    """A parsed VRPLIB instance (``vrplib``'s dict, or :func:`read_vrplib_text`'s) in solver units, with the cost
    and duration matrices its best-known value is measured in. CVRP: TSPLIB nearest-integer distances, any number
    of vehicles. VRPTW: DIMACS tenths (distance, travel time, windows and service all x10), ``VEHICLES`` vehicles, the
    depot's window as the shift; the cost is the distance in the file's units."""
    coords, demand = np.asarray(inst["node_coord"], dtype=float), np.asarray(inst["demand"]).astype(np.int64)
    n = len(coords)
    if str(inst["type"]).upper() == "CVRP":
        exact = np.floor(euclidean(coords) + 0.5)  # TSPLIB nint
        problem = RoutingProblem(
            distance=exact.astype(np.int64),
            duration=exact.astype(np.int64),
            demand=demand,
            service=np.zeros(n, np.int64),
            window_start=np.zeros(n, np.int64),
            window_end=np.full(n, 10**12, np.int64),
            fleet=Fleet(vehicles=n - 1, capacity=int(inst["capacity"])),
        )
        return problem, exact, exact
    tenths = truncated_tenths(coords)
    windows = np.round(np.asarray(inst["time_window"], dtype=float) * DIMACS_SCALE).astype(np.int64)
    service = np.broadcast_to(np.asarray(inst["service_time"], dtype=float), (n,)).copy()
    service[0] = 0.0  # a scalar SERVICE_TIME is the customers'; the depot has none
    problem = RoutingProblem(
        distance=tenths.astype(np.int64),
        duration=tenths.astype(np.int64),
        demand=demand,
        service=np.round(service * DIMACS_SCALE).astype(np.int64),
        window_start=windows[:, 0],
        window_end=windows[:, 1],
        fleet=Fleet(vehicles=int(inst["vehicles"]), capacity=int(inst["capacity"]), shift_start=int(windows[0, 0]), shift_end=int(windows[0, 1])),
    )
    return problem, tenths / DIMACS_SCALE, tenths


def read_vrplib_text(path: Path) -> dict:
    """A second, independent reader of a VRPLIB file (plain text parsing, no ``vrplib``): the checker replays the
    solutions against the file as written, not against the solver's parse of it."""
    header: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        words = line.replace(":", " : ", 1).split() if ":" in line and not line.strip()[0].isdigit() else line.split()
        if not words or words[0] == "EOF":
            continue
        if words[0].endswith("_SECTION"):
            current = words[0]
            sections[current] = []
        elif len(words) > 2 and words[1] == ":":
            header[words[0]] = " ".join(words[2:])
            current = None
        elif current:
            sections[current].append(words)

    def column(section: str, width: int) -> np.ndarray:
        rows = sorted(sections[section], key=lambda r: int(r[0]))
        return np.asarray([[float(v) for v in r[1 : 1 + width]] for r in rows])

    out = {
        "type": header["TYPE"],
        "capacity": int(header["CAPACITY"]),
        "node_coord": column("NODE_COORD_SECTION", 2),
        "demand": column("DEMAND_SECTION", 1)[:, 0],
    }
    if out["type"].upper() == "VRPTW":
        out["vehicles"] = int(header["VEHICLES"])
        out["time_window"] = column("TIME_WINDOW_SECTION", 2)
        out["service_time"] = column("SERVICE_TIME_SECTION", 1)[:, 0] if "SERVICE_TIME_SECTION" in sections else float(header["SERVICE_TIME"])
    return out


def ortools_routes(problem: RoutingProblem, time_limit_s: float) -> list[list[int]]:
    """OR-Tools' routing solver (guided local search) on the same integer data: the speed/quality anchor."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n, fleet = len(problem.demand), problem.fleet
    manager = pywrapcp.RoutingIndexManager(n, fleet.vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    distance, duration = problem.distance.tolist(), problem.duration.tolist()
    service, demand = problem.service.tolist(), problem.demand.tolist()

    def arc_cost(i, j):
        return distance[manager.IndexToNode(i)][manager.IndexToNode(j)]

    def travel(i, j):
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return service[a] + duration[a][b]

    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitCallback(arc_cost))
    load = routing.RegisterUnaryTransitCallback(lambda i: demand[manager.IndexToNode(i)])
    routing.AddDimensionWithVehicleCapacity(load, 0, [fleet.capacity] * fleet.vehicles, True, "load")
    horizon = int(min(fleet.shift_end, problem.window_end.max() + problem.duration.max() + problem.service.max()))
    routing.AddDimension(routing.RegisterTransitCallback(travel), horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    for node in range(1, n):
        time_dim.CumulVar(manager.NodeToIndex(node)).SetRange(int(problem.window_start[node]), int(min(problem.window_end[node], horizon)))
    for vehicle in range(fleet.vehicles):
        time_dim.CumulVar(routing.Start(vehicle)).SetRange(int(fleet.shift_start), horizon)
        time_dim.CumulVar(routing.End(vehicle)).SetRange(int(fleet.shift_start), horizon)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(time_limit_s * 1000))
    solution = routing.SolveWithParameters(params)
    if solution is None:
        return []
    routes = []
    for vehicle in range(fleet.vehicles):
        index, stops = solution.Value(routing.NextVar(routing.Start(vehicle))), []
        while not routing.IsEnd(index):
            stops.append(manager.IndexToNode(index))
            index = solution.Value(routing.NextVar(index))
        if stops:
            routes.append(stops)
    return routes


def run(path: Path, bks_file: Path | None, time_limit_s: float, seed: int) -> list[dict]:
    problem, cost, duration, best_known = read_instance(path, bks_file)
    if path.suffix == ".vrp":  # the checker reads the file itself
        problem_as_written, cost, duration = vrplib_problem(read_vrplib_text(path))
    else:
        problem_as_written = problem
    rows = []
    for solver in ("pyvrp", "ortools"):
        started = time.perf_counter()
        if solver == "pyvrp":
            routes = [r.stops for r in solve(problem, time_limit_s, seed).routes]
        else:
            routes = ortools_routes(problem, time_limit_s)
        seconds = time.perf_counter() - started
        result = check(problem_as_written, routes, cost=cost, duration=duration)
        served = sum(len(r) for r in routes)
        rows.append(
            {
                "instance": path.stem,
                "solver": solver,
                "cost": round(result.cost, 2),
                "best_known": best_known,
                "gap_pct": round(100 * gap(result.cost, best_known), 3) if served == problem.stops else None,
                "routes": len(routes),
                "served": served,
                "stops": problem.stops,
                "feasible": result.feasible,
                "violations": list(result.violations[:3]),
                "seconds": round(seconds, 2),
                "time_limit_s": time_limit_s,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=Path, nargs="+", required=True, help="Solomon .txt or VRPLIB .vrp files")
    parser.add_argument("--bks", type=Path, help="JSON of best-known costs for Solomon instances")
    parser.add_argument("--time-limit", type=float, default=9.5, help="solver seconds per instance (the wall time adds reading and model building)")
    parser.add_argument("--seed", type=int, default=1)
    record.add_arguments(parser, "benchmarks/results/routing_vrp.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [row for path in args.instances for row in run(path, args.bks, args.time_limit, args.seed)]
    print(f"\nVRP instances, {args.time_limit:g} s per solver (one core each); gap to best known")
    print(f"{'instance':<12}{'solver':<9}{'cost':>10}{'best known':>12}{'gap %':>8}{'routes':>8}{'served':>8}{'feasible':>10}{'s':>7}")
    for r in rows:
        gap_text = "-" if r["gap_pct"] is None else f"{r['gap_pct']:.2f}"
        print(
            f"{r['instance']:<12}{r['solver']:<9}{r['cost']:>10.2f}{r['best_known']:>12.2f}{gap_text:>8}{r['routes']:>8}"
            f"{r['served']:>5}/{r['stops']:<3}{r['feasible']!s:>9}{r['seconds']:>7.1f}"
        )
    params = {"instances": " ".join(p.name for p in args.instances), "time_limit": args.time_limit, "seed": args.seed}
    record.save(args, "routing_vrp", {"rows": rows}, record.row_metrics(rows, ("instance", "solver")), params)


if __name__ == "__main__":
    main()
