"""Road graph, travel matrix, CVRPTW solve and the day's screening on a hand-made OSM file and on Monaco."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.errors import ConfigError
from ml.routing import data as routing_data
from ml.routing import graph, matrix, model, rows, screening
from ml.routing import io as routing_io
from ml.routing.evaluate import check, route_cost
from ml.routing.pipeline import RoutingConfig

LAT, LON = 43.73, 7.42
STEP = 0.001  # degrees: about 111 m north-south, 80 m east-west here
# A ring 1-2-3-4-1 of two-way streets; 3 -> 5 a one-way dead end (5 cannot get back); 6 -> 2 only (oneway=-1 on
# the way 2, 6: nobody can drive to 6); 1 - 7 a footway (not drivable).
NODES = {1: (0, 0), 2: (0, 1), 3: (1, 1), 4: (1, 0), 5: (2, 1), 6: (0, 2), 7: (-1, 0)}
WAYS = {
    10: ([1, 2, 3], {"highway": "residential", "maxspeed": "50"}),
    11: ([3, 4], {"highway": "tertiary", "maxspeed": "30 mph"}),
    12: ([4, 1], {"highway": "residential"}),
    13: ([3, 5], {"highway": "residential", "oneway": "yes"}),
    14: ([2, 6], {"highway": "residential", "oneway": "-1"}),
    15: ([1, 7], {"highway": "footway"}),
}


def write_osm(path: Path) -> Path:
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<osm version='0.6' generator='test'>"]
    for node, (dy, dx) in NODES.items():
        lines.append(f"  <node id='{node}' version='1' lat='{LAT + dy * STEP:.7f}' lon='{LON + dx * STEP:.7f}'/>")
    for way, (refs, tags) in WAYS.items():
        lines.append(f"  <way id='{way}' version='1'>")
        lines += [f"    <nd ref='{r}'/>" for r in refs]
        lines += [f"    <tag k='{k}' v='{v}'/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def osm_file(tmp_path: Path) -> Path:
    return write_osm(tmp_path / "ring.osm")


def pairs(network: graph.RoadNetwork) -> set[tuple[int, int]]:
    return set(zip(network.edges["u"], network.edges["v"], strict=True))


def test_ways_are_split_directed_filtered_and_priced(osm_file):
    full = graph.read_osm_file(osm_file, largest_component=False)
    assert set(full.nodes.index) == {1, 2, 3, 4, 5, 6}  # the footway's far node is not on the drive network
    ring = {(1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3), (4, 1), (1, 4)}
    assert pairs(full) == ring | {(3, 5), (6, 2)}
    speed = full.edges.set_index(["u", "v"])["speed_kph"]
    assert speed[(3, 4)] == pytest.approx(30 * 1.609344)
    assert speed[(1, 2)] == 50 and speed[(4, 1)] == graph.HIGHWAY_SPEEDS_KPH["residential"]
    edge = full.edges.set_index(["u", "v"]).loc[(1, 2)]
    assert edge["length"] == pytest.approx(graph.great_circle_m(LAT, LON, LAT, LON + STEP))
    assert edge["travel_time"] == pytest.approx(edge["length"] / (50 / 3.6))

    kept = graph.read_osm_file(osm_file)
    assert set(kept.nodes.index) == {1, 2, 3, 4} and pairs(kept) == ring
    assert kept.imputed_share == pytest.approx(2 / 8)  # way 12 has no maxspeed


def test_unreachable_pairs_are_reported_not_hidden(osm_file):
    full = graph.read_osm_file(osm_file, largest_component=False)
    nodes = full.node_index(np.array([1, 5, 6]))
    m = matrix.travel_matrix(full, nodes)
    assert np.isfinite(m.seconds[0, 0]) and np.isinf(m.seconds[0, 2]) and np.isinf(m.seconds[1, 0])
    assert np.isfinite(m.seconds[2, 0])  # 6 -> 2 -> 1 is allowed
    assert set(map(tuple, m.unreachable().to_numpy())) == {(0, 2), (1, 0), (1, 2)}
    with pytest.raises(ValueError, match="no road path"):
        m.path(1, 0)


def test_matrix_times_are_the_times_along_its_paths(osm_file):
    network = graph.read_osm_file(osm_file)
    m = matrix.travel_matrix(network, np.arange(len(network.nodes)))
    fastest = matrix.fastest_edges(network)
    for i, j in itertools.permutations(range(len(network.nodes)), 2):
        assert sum(t for t, _, _ in m.path_edges(i, j, fastest)) == pytest.approx(m.seconds[i, j])
    # 1 -> 3: via 2 (50 km/h) beats via 4 (30 km/h residential + 30 mph)
    one, three = network.node_index(np.array([1, 3]))
    assert [int(network.nodes.index[p]) for p in m.path(one, three)] == [1, 2, 3]


def test_snap_reports_the_distance_to_the_road(osm_file):
    network = graph.read_osm_file(osm_file)
    snapped = matrix.snap(network, np.array([LAT + 0.0001, LAT + 0.05]), np.array([LON, LON]))
    assert snapped.osmid.tolist() == [1, 4]
    assert snapped.distance_m[0] == pytest.approx(11.1, abs=0.2) and snapped.distance_m[1] > 5000


def test_cache_is_keyed_by_file_content(osm_file, tmp_path):
    cache = tmp_path / "cache"
    first = graph.load_network(osm_file, cache)
    again = graph.load_network(osm_file, cache)
    pd.testing.assert_frame_equal(first.edges, again.edges)
    assert len(list(cache.iterdir())) == 1
    WAYS[12][1]["maxspeed"] = "20"
    try:
        write_osm(osm_file)
        changed = graph.load_network(osm_file, cache)
    finally:
        del WAYS[12][1]["maxspeed"]
    assert len(list(cache.iterdir())) == 2 and changed.imputed_share == 0


def test_missing_or_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        graph.read_osm_file(tmp_path / "nope.osm.pbf")
    empty = tmp_path / "empty.osm"
    empty.write_text("<?xml version='1.0'?><osm version='0.6'><node id='1' version='1' lat='1' lon='1'/></osm>")
    with pytest.raises(ConfigError, match="no drivable ways"):
        graph.read_osm_file(empty)


def test_monaco_pbf_and_osmnx_agree_on_road_distances(shared_data):
    """Our pyosmium build of the PBF against osmnx's own reader of the same roads (the derived XML file): the
    shortest road distances between intersections both keep are the same."""
    import osmnx as ox

    ours = graph.read_osm_file(shared_data / "osm" / "monaco_osrm-testdata.osm.pbf")
    theirs = graph.from_networkx(ox.graph_from_xml(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2"), "osmnx")
    common = np.intersect1d(ours.nodes.index, theirs.nodes.index)
    assert len(common) > 0.9 * len(theirs.nodes)
    sample = np.random.default_rng(0).choice(common, 40, replace=False)
    a = matrix.travel_matrix(ours, ours.node_index(sample), weight="length", with_paths=False).seconds
    b = matrix.travel_matrix(theirs, theirs.node_index(sample), weight="length", with_paths=False).seconds
    np.testing.assert_allclose(a, b, rtol=1e-6)
    # the bz2 XML through our reader is the same network as the PBF
    xml = graph.read_osm_file(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2")
    assert set(xml.nodes.index) == set(ours.nodes.index) and len(xml.edges) == len(ours.edges)


def test_parallel_matrix_on_the_pruned_core_equals_plain_dijkstra(shared_data):
    from scipy.sparse.csgraph import dijkstra

    network = graph.read_osm_file(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2")
    nodes = np.random.default_rng(1).choice(len(network.nodes), 200, replace=False)
    serial = matrix.travel_matrix(network, nodes, workers=1)
    parallel = matrix.travel_matrix(network, nodes, workers=2)
    np.testing.assert_array_equal(serial.seconds, parallel.seconds)
    assert serial.path(3, 150) == parallel.path(3, 150)
    plain = dijkstra(network.csgraph(), directed=True, indices=nodes)[:, nodes]
    np.testing.assert_allclose(serial.seconds, plain, rtol=1e-12)
    assert len(matrix._core(network.csgraph(), nodes[:5])) < 0.95 * len(network.nodes)  # dead ends were pruned


def line_problem(demand, windows=None, vehicles=3, capacity=10, shift=(0, 1000)) -> model.RoutingProblem:
    """Depot at 0, stops on a line at 10, 20, ...; travel time = distance."""
    x = np.arange(len(demand) + 1) * 10
    d = np.abs(x[:, None] - x[None, :]).astype(np.int64)
    n = len(x)
    windows = windows or [shift] * (n - 1)
    return model.RoutingProblem(
        distance=d,
        duration=d,
        demand=np.array([0, *demand]),
        service=np.array([0] + [5] * (n - 1)),
        window_start=np.array([shift[0]] + [w[0] for w in windows]),
        window_end=np.array([shift[1]] + [w[1] for w in windows]),
        fleet=model.Fleet(vehicles=vehicles, capacity=capacity, shift_start=shift[0], shift_end=shift[1]),
    )


def brute_force_cost(problem: model.RoutingProblem) -> float:
    """Cheapest feasible set of routes over every assignment of stops to vehicles and every order."""
    stops = list(range(1, problem.stops + 1))
    best = np.inf
    for labels in itertools.product(range(problem.fleet.vehicles), repeat=len(stops)):
        groups = [[s for s, g in zip(stops, labels, strict=True) if g == v] for v in range(problem.fleet.vehicles)]
        for orders in itertools.product(*[itertools.permutations(g) for g in groups]):
            routes = [list(o) for o in orders if o]
            result = check(problem, routes)
            if result.feasible:
                best = min(best, result.cost)
    return best


def test_pyvrp_solution_is_optimal_on_a_small_case_and_passes_the_checker():
    problem = line_problem([4, 4, 4, 4, 6], windows=[(0, 1000), (0, 1000), (0, 60), (0, 1000), (0, 1000)])
    solution = model.solve(problem, time_limit_s=1, seed=0)
    routes = [r.stops for r in solution.routes]
    result = check(problem, routes)
    assert result.feasible, result.violations
    assert solution.unserved == () and result.cost == pytest.approx(brute_force_cost(problem))
    assert solution.cost == result.cost == route_cost(routes, problem.distance)
    for route, starts in zip(solution.routes, result.arrivals, strict=True):
        assert all(v.service_start >= s for v, s in zip(route.visits, starts, strict=True))  # never before it can be there
        assert route.visits[0].load == sum(problem.demand[s] for s in route.stops)


def test_checker_names_each_violation():
    problem = line_problem([6, 6], windows=[(0, 1000), (0, 15)], vehicles=1)
    result = check(problem, [[1, 2]])
    assert not result.feasible
    text = " ".join(result.violations)
    assert "capacity 10" in text and "after its window ends" in text
    assert check(problem, [[1], [2]]).violations[0] == "2 routes for 1 vehicles"


def test_optional_stops_are_dropped_only_when_the_fleet_is_full():
    problem = line_problem([8, 8, 8], vehicles=2)
    optional = model.RoutingProblem(**{**problem.__dict__, "prize": np.full(4, 10_000)})
    solution = model.solve(optional, time_limit_s=0.5, no_improvement=2_000)
    assert len(solution.unserved) == 1 and len(solution.routes) == 2 and solution.feasible


def test_bad_problems_are_refused():
    with pytest.raises(ConfigError, match="at least one vehicle"):
        model.Fleet(vehicles=0, capacity=5)
    with pytest.raises(ConfigError, match="shape"):
        model.RoutingProblem(
            distance=np.zeros((2, 2), int),
            duration=np.zeros((3, 3), int),
            demand=np.zeros(3),
            service=np.zeros(3),
            window_start=np.zeros(3),
            window_end=np.ones(3),
            fleet=model.Fleet(vehicles=1, capacity=1),
        )
    with pytest.raises(ConfigError, match="shift"):
        RoutingConfig(shift_start_h=20, shift_end_h=8)


def test_each_unservable_order_gets_its_reason_and_the_rest_are_routed(osm_file):
    """The acceptance case: an order on an unreachable node, an impossible window, an over-capacity order (and an
    address far from any road, one without coordinates) are reported; the others still get a route."""
    road = graph.read_osm_file(osm_file, largest_component=False)
    day = dt.date(2024, 3, 2)

    def at(node):
        dy, dx = NODES[node]
        return LAT + dy * STEP, LON + dx * STEP

    def order(oid, node, demand=2, window=None, lat=None):
        la, lo = at(node)
        start, end = (
            (None, None)
            if window is None
            else (pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=window[0]), pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=window[1]))
        )
        return {
            "order_id": oid,
            "ship_lat": la if lat is None else lat,
            "ship_lon": lo,
            "demand": demand,
            "window_start": start,
            "window_end": end,
            "warehouse_id": "W0",
        }

    orders = pd.DataFrame(
        [
            order("ok-2", 2),
            order("ok-3", 3, window=(9, 11)),
            order("ok-4", 4),
            order("dead-end", 5),  # one-way street in, no way back
            order("too-early", 3, window=(7, 8)),  # window closes as the shift opens: no one can be there at 8:00
            order("heavy", 4, demand=50),
            order("far", 4, lat=LAT + 0.05),
            {**order("nowhere", 4), "ship_lat": np.nan},
        ]
    )
    warehouse = pd.Series({"warehouse_id": "W0", "lat": LAT, "lon": LON, "vehicles": 2, "vehicle_capacity": 10})
    config = RoutingConfig(time_limit_s=1)
    depot_day = routing_data.depot_day(orders, warehouse, config, day)
    routable, exceptions, m = screening.screen(depot_day, road)
    reasons = dict(zip(exceptions["order_id"], exceptions["reason"], strict=True))
    assert reasons == {"dead-end": "unreachable", "too-early": "time_window", "heavy": "over_capacity", "far": "address_off_network", "nowhere": "no_address"}
    detail = dict(zip(exceptions["order_id"], exceptions["detail"], strict=True))
    assert "no road path back to depot W0" in detail["dead-end"]
    assert "window 08:00-08:00" in detail["too-early"] and "50 units exceed the vehicle capacity of 10" in detail["heavy"]
    problem = screening.routing_problem(depot_day, routable, m)
    solution = model.solve(problem, time_limit_s=1, no_improvement=2_000)
    assert solution.unserved == () and check(problem, [r.stops for r in solution.routes]).feasible
    route_rows = rows.route_rows(dt.date(2024, 3, 1), depot_day, routable, m, solution, road, matrix.fastest_edges(road))
    assert set(route_rows["order_id"].dropna()) == {"ok-2", "ok-3", "ok-4"}
    stop = route_rows[route_rows["order_id"] == "ok-3"].iloc[0]
    assert stop["window_start"] <= stop["eta"] <= stop["window_end"]
    # ETAs advance by the matrix's leg time, the service time and any wait for a window
    for _, legs in route_rows.groupby("vehicle_id"):
        eta = legs.sort_values("stop_seq")["eta"].to_numpy()
        gaps = np.diff(eta) / np.timedelta64(1, "s")
        legs_s = legs.sort_values("stop_seq")["leg_seconds"].to_numpy()[1:]
        assert (gaps >= np.rint(legs_s) - 1e-6).all()


def test_a_place_is_downloaded_through_osmnx_once_then_cached(settings, shared_data, monkeypatch):
    import osmnx as ox

    calls = []

    def fake_download(place, network_type):
        calls.append((place, network_type))
        return ox.graph_from_xml(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2")

    monkeypatch.setattr(ox, "graph_from_place", fake_download)
    config = RoutingConfig(place="Monaco")
    first = routing_io.network(settings, config)
    again = routing_io.network(settings, config)
    assert calls == [("Monaco", "drive")] and len(first.nodes) == len(again.nodes) > 1000
    assert first.source == "Monaco" and 0 < first.imputed_share < 1


def test_a_fixed_cost_per_vehicle_fills_vans_before_sending_another():
    zero = np.zeros((3, 3), dtype=np.int64)  # two orders at the depot's own node: any split costs the same time
    fleet = model.Fleet(vehicles=2, capacity=10, shift_start=0, shift_end=1000, fixed_cost=600)
    problem = model.RoutingProblem(
        distance=zero,
        duration=zero,
        demand=np.array([0, 2, 2]),
        service=np.array([0, 60, 60]),
        window_start=np.zeros(3, np.int64),
        window_end=np.full(3, 1000),
        fleet=fleet,
        minimise="duration",
    )
    solution = model.solve(problem, time_limit_s=0.5, no_improvement=1_000)
    assert len(solution.routes) == 1 and solution.routes[0].stops in ([1, 2], [2, 1])
