"""Tomorrow's delivery routes on the lake: the orders promised for ds + 1, per depot (warehouse), on the road
network; one CVRPTW per depot (mapped), then one publish step writes the day.

Outputs for ds: ``delivery_routes`` (one row per stop, depot departures and returns included),
``delivery_exceptions`` (every order that is not on a route, with the reason), and beside them in the lake
``delivery_maps/ds=.../`` the routes as GeoJSON, an HTML map (folium), a PNG and ``summary.json``.

An order that cannot be served (no address, address far from any road, no road path to or from the depot,
heavier than a vehicle, a time window no vehicle can keep, or no room left in the fleet) is reported and the
rest of the day is still routed."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import contract, lake, staging
from ml.dates import as_date
from ml.errors import ConfigError, EcomError
from ml.routing import maps
from ml.routing.graph import RoadNetwork, load_network, load_place
from ml.routing.matrix import TravelMatrix, fastest_edges, snap, travel_matrix
from ml.routing.model import Fleet, RoutingProblem, RoutingSolution, solve
from ml.routing.pipeline import RoutingConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

ROUTES = "delivery_routes"
EXCEPTIONS = "delivery_exceptions"
MAPS = "delivery_maps"
ROUTE_COLUMNS = contract.table(ROUTES).column_names
EXCEPTION_COLUMNS = contract.table(EXCEPTIONS).column_names


def delivery_day(ds: str) -> dt.date:
    return as_date(ds) + dt.timedelta(days=1)


def network(settings: Settings, config: RoutingConfig) -> RoadNetwork:
    """The configured road network, built once and then read from the cache under ECOM_HOME (a downloaded place
    is cached by its name: delete its folder to download it again)."""
    cache = settings.home / "cache" / "roads"
    if config.place:
        return load_place(config.place, cache)
    return load_network(config.road_file(settings), cache_dir=cache)


def load_orders(settings: Settings, ds: str, config: RoutingConfig) -> pd.DataFrame:
    """Orders promised for ds + 1 (from the order partitions of the last ``lookback_days`` days), with their load in
    units (order lines summed, fractions rounded up)."""
    end = as_date(ds)
    start = end - dt.timedelta(days=config.lookback_days - 1)
    orders = lake.read_range(settings.lake_dir, "curated", "orders", start, end)
    if orders.empty:
        return orders.assign(demand=pd.Series(dtype="int64"))
    day = pd.Timestamp(delivery_day(ds), tz="UTC")
    orders = orders[pd.to_datetime(orders["promised_date"], utc=True) == day]
    if config.depot:
        orders = orders[orders["warehouse_id"] == config.depot]
    items = lake.read_range(settings.lake_dir, "curated", "order_items", start, end)
    units = items[items["order_id"].isin(orders["order_id"])].groupby("order_id")["qty"].sum()
    return orders.assign(demand=np.ceil(orders["order_id"].map(units).fillna(0).to_numpy()).astype(np.int64)).reset_index(drop=True)


def depot_ids(settings: Settings, ds: str, config: RoutingConfig, orders: pd.DataFrame | None = None) -> list[str]:
    """Depots with orders for ds + 1, in a fixed order (their index is the staging shard)."""
    orders = load_orders(settings, ds, config) if orders is None else orders
    depots = sorted(orders["warehouse_id"].dropna().unique()) if len(orders) else []
    if config.depot and config.depot not in depots:
        known = sorted(lake.read_latest(settings.lake_dir, "curated", "warehouses", ds)["warehouse_id"])
        if config.depot not in known:
            raise ConfigError(f"depot {config.depot!r} is not a warehouse; warehouses are {known}")
    return depots


@dataclass(frozen=True)
class DepotDay:
    """One depot's inputs in solver units: seconds from the delivery day's midnight (UTC)."""

    depot_id: str
    depot: pd.Series  # warehouses row
    orders: pd.DataFrame
    fleet: Fleet
    service_s: int
    max_snap_m: float


def depot_day(orders: pd.DataFrame, warehouse: pd.Series, config: RoutingConfig, day: dt.date) -> DepotDay:
    midnight = pd.Timestamp(day, tz="UTC")
    start_s, end_s = int(config.shift_start_h * 3600), int(config.shift_end_h * 3600)

    def seconds(column: str, default: int) -> np.ndarray:
        values = pd.to_datetime(orders[column], utc=True) if column in orders else pd.Series(pd.NaT, index=orders.index)
        return ((values - midnight).dt.total_seconds()).fillna(default).to_numpy().astype(np.int64)

    orders = orders.assign(tw_start=np.maximum(seconds("window_start", start_s), start_s), tw_end=np.minimum(seconds("window_end", end_s), end_s))
    fleet = Fleet(
        vehicles=int(config.fleet_size or warehouse["vehicles"]),
        capacity=int(config.vehicle_capacity or warehouse["vehicle_capacity"]),
        shift_start=start_s,
        shift_end=end_s,
        max_duration=int(config.max_route_h * 3600),
        fixed_cost=round(config.van_cost_min * 60),
    )
    return DepotDay(
        depot_id=str(warehouse["warehouse_id"]),
        depot=warehouse,
        orders=orders.reset_index(drop=True),
        fleet=fleet,
        service_s=round(config.service_min * 60),
        max_snap_m=config.max_snap_m,
    )


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def screen(day: DepotDay, road: RoadNetwork) -> tuple[pd.DataFrame, pd.DataFrame, TravelMatrix | None]:
    """Snap the depot and the orders, compute the travel matrix, and set aside every order no route can serve.

    Returns (routable orders with their matrix position ``pos``, exceptions, matrix over depot + all snapped
    orders; None when the depot itself is off the network)."""
    orders = day.orders
    exceptions: list[dict] = []

    def reject(rows: pd.DataFrame, reason: str, detail) -> None:
        for (_, row), text in zip(rows.iterrows(), detail if isinstance(detail, list) else [detail] * len(rows), strict=True):
            exceptions.append({"order_id": row["order_id"], "reason": reason, "detail": text})

    depot_snap = snap(road, np.array([day.depot["lat"]]), np.array([day.depot["lon"]]))
    if depot_snap.distance_m[0] > day.max_snap_m:
        reject(
            orders,
            "depot_off_network",
            f"depot {day.depot_id} is {depot_snap.distance_m[0]:.0f} m from the nearest "
            f"road of {road.source} (limit {day.max_snap_m:g} m): check its coordinates or the road network",
        )
        return orders.iloc[:0], pd.DataFrame(exceptions), None
    no_address = orders["ship_lat"].isna() | orders["ship_lon"].isna()
    reject(orders[no_address], "no_address", "the order has no delivery coordinates (ship_lat/ship_lon)")
    orders = orders[~no_address]
    snapped = snap(road, orders["ship_lat"].to_numpy(), orders["ship_lon"].to_numpy())
    orders = orders.assign(node=snapped.node, node_id=snapped.osmid, snap_m=snapped.distance_m)
    far = orders["snap_m"] > day.max_snap_m
    reject(orders[far], "address_off_network", [f"address is {m:.0f} m from the nearest road (limit {day.max_snap_m:g} m)" for m in orders.loc[far, "snap_m"]])
    orders = orders[~far].reset_index(drop=True)
    heavy = orders["demand"] > day.fleet.capacity
    reject(orders[heavy], "over_capacity", [f"{d} units exceed the vehicle capacity of {day.fleet.capacity}" for d in orders.loc[heavy, "demand"]])
    orders = orders[~heavy].reset_index(drop=True)
    matrix = travel_matrix(road, np.concatenate([depot_snap.node, orders["node"].to_numpy()]))
    orders["pos"] = np.arange(1, len(orders) + 1)
    out_s, back_s = matrix.seconds[0, orders["pos"]], matrix.seconds[orders["pos"], 0]
    unreachable = ~np.isfinite(out_s) | ~np.isfinite(back_s)
    reject(
        orders[unreachable],
        "unreachable",
        [
            f"no road path {'from' if not np.isfinite(o) else 'back to'} depot {day.depot_id} (node {n})"
            for o, n in zip(out_s[unreachable], orders.loc[unreachable, "node_id"], strict=True)
        ],
    )
    keep = ~unreachable
    orders, out_s, back_s = orders[keep], out_s[keep], back_s[keep]
    fleet = day.fleet
    earliest = np.maximum(fleet.shift_start + out_s, orders["tw_start"].to_numpy())
    late = (earliest > orders["tw_end"].to_numpy()) | (orders["tw_end"] < orders["tw_start"]).to_numpy()
    no_return = ~late & (earliest + day.service_s + back_s > fleet.shift_end)
    too_long = ~late & ~no_return & (out_s + day.service_s + back_s > fleet.max_duration)
    reject(
        orders[late],
        "time_window",
        [
            f"window {_clock(a)}-{_clock(b)} cannot be kept: the earliest arrival from depot {day.depot_id} is {_clock(e)}"
            for a, b, e in zip(orders.loc[late, "tw_start"], orders.loc[late, "tw_end"], fleet.shift_start + out_s[late], strict=True)
        ],
    )
    reject(
        orders[no_return],
        "time_window",
        [f"after serving it at {_clock(e)} no vehicle can be back by the shift end {_clock(fleet.shift_end)}" for e in earliest[no_return]],
    )
    reject(
        orders[too_long],
        "time_window",
        [
            f"the round trip takes {(o + b) / 3600:.1f} h, more than the maximum route of {fleet.max_duration / 3600:g} h"
            for o, b in zip(out_s[too_long], back_s[too_long], strict=True)
        ],
    )
    orders = orders[~(late | no_return | too_long)].reset_index(drop=True)
    return orders, pd.DataFrame(exceptions, columns=["order_id", "reason", "detail"]), matrix


def routing_problem(day: DepotDay, orders: pd.DataFrame, matrix: TravelMatrix) -> RoutingProblem:
    """The CVRPTW over the depot and the routable orders (integer seconds; optional stops worth more than any
    detour, so the solver serves every order it can fit and drops only what the fleet cannot carry)."""
    positions = np.concatenate([[0], orders["pos"].to_numpy()])
    seconds = np.rint(matrix.seconds[np.ix_(positions, positions)]).astype(np.int64)
    n = len(positions)
    service = np.full(n, day.service_s, np.int64)
    service[0] = 0
    fleet = day.fleet
    prize = np.full(n, 10 * (fleet.shift_end - fleet.shift_start + 2 * int(seconds.max()) + day.service_s + fleet.fixed_cost), np.int64)
    return RoutingProblem(
        distance=seconds,
        duration=seconds,
        demand=np.concatenate([[0], orders["demand"].to_numpy()]).astype(np.int64),
        service=service,
        window_start=np.concatenate([[fleet.shift_start], orders["tw_start"].to_numpy()]).astype(np.int64),
        window_end=np.concatenate([[fleet.shift_end], orders["tw_end"].to_numpy()]).astype(np.int64),
        fleet=fleet,
        minimise="duration",
        prize=prize,
    )


def route_rows(ds: str, day: DepotDay, orders: pd.DataFrame, matrix: TravelMatrix, solution: RoutingSolution, road: RoadNetwork, fastest: dict) -> pd.DataFrame:
    """One row per stop: the depot departure (stop 0), each delivery, the return; ETAs as UTC timestamps."""
    midnight = pd.Timestamp(delivery_day(ds), tz="UTC")
    depot_node = int(road.nodes.index[matrix.nodes[0]])
    rows = []
    for route in solution.routes:
        vehicle = f"{day.depot_id}-V{route.vehicle + 1:02d}"
        base = {
            "depot_id": day.depot_id,
            "vehicle_id": vehicle,
            "order_id": None,
            "node_id": depot_node,
            "lat": float(day.depot["lat"]),
            "lon": float(day.depot["lon"]),
            "window_start": np.nan,
            "window_end": np.nan,
            "demand": 0,
        }
        rows.append({**base, "stop_seq": 0, "eta": route.start, "load": route.visits[0].load if route.visits else 0, "leg_seconds": 0.0, "leg_metres": 0.0})
        previous = 0
        for seq, visit in enumerate(route.visits, start=1):
            order = orders.iloc[visit.stop - 1]
            here = int(order["pos"])
            rows.append(
                {
                    "depot_id": day.depot_id,
                    "vehicle_id": vehicle,
                    "stop_seq": seq,
                    "order_id": order["order_id"],
                    "node_id": int(order["node_id"]),
                    "lat": float(order["ship_lat"]),
                    "lon": float(order["ship_lon"]),
                    "eta": visit.service_start,
                    "window_start": int(order["tw_start"]),
                    "window_end": int(order["tw_end"]),
                    "demand": int(order["demand"]),
                    "load": visit.load,
                    "leg_seconds": float(matrix.seconds[previous, here]),
                    "leg_metres": path_metres(matrix, previous, here, fastest),
                }
            )
            previous = here
        rows.append(
            {
                **base,
                "stop_seq": len(route.visits) + 1,
                "eta": route.end,
                "load": 0,
                "leg_seconds": float(matrix.seconds[previous, 0]),
                "leg_metres": path_metres(matrix, previous, 0, fastest),
            }
        )
    frame = pd.DataFrame(rows, columns=[c for c in ROUTE_COLUMNS if c != "ds"])
    for column in ("eta", "window_start", "window_end"):
        frame[column] = midnight + pd.to_timedelta(frame[column].astype("float"), unit="s")
    return frame.assign(ds=as_date(ds).isoformat())[ROUTE_COLUMNS]


def path_metres(matrix: TravelMatrix, i: int, j: int, fastest: dict) -> float:
    return float(sum(m for _, m, _ in matrix.path_edges(i, j, fastest)))


def route_depot(settings: Settings, ds: str, depot_id: str, config: RoutingConfig) -> dict:
    """Route one depot's orders for ds + 1 and stage its rows, exceptions and map features; returns a summary."""
    orders = load_orders(settings, ds, config)
    depots = depot_ids(settings, ds, config, orders)
    if depot_id not in depots:
        raise EcomError(f"depot {depot_id!r} has no orders promised for {delivery_day(ds)} (depots with orders: {depots})")
    shard = depots.index(depot_id)
    warehouses = lake.read_latest(settings.lake_dir, "curated", "warehouses", ds).set_index("warehouse_id", drop=False)
    day = depot_day(orders[orders["warehouse_id"] == depot_id], warehouses.loc[depot_id], config, delivery_day(ds))
    road = network(settings, config)
    routable, exceptions, matrix = screen(day, road)
    solution = None
    if matrix is not None and len(routable):
        solution = solve(routing_problem(day, routable, matrix), config.time_limit_s, config.seed, config.no_improvement)
    fastest = fastest_edges(road)
    routes = route_rows(ds, day, routable, matrix, solution, road, fastest) if solution else pd.DataFrame(columns=ROUTE_COLUMNS)
    if solution and solution.unserved:
        dropped = routable.iloc[[s - 1 for s in solution.unserved]]
        fleet = day.fleet
        exceptions = pd.concat(
            [
                exceptions,
                pd.DataFrame(
                    {
                        "order_id": dropped["order_id"],
                        "reason": "fleet_full",
                        "detail": f"no room left on {fleet.vehicles} vehicles of {fleet.capacity} units within the shift "
                        f"{_clock(fleet.shift_start)}-{_clock(fleet.shift_end)} (max route {fleet.max_duration / 3600:g} h)",
                    }
                ),
            ],
            ignore_index=True,
        )
    exceptions = exceptions.assign(ds=as_date(ds).isoformat(), depot_id=depot_id)[EXCEPTION_COLUMNS]
    staging.stage(settings, ROUTES, ds, shard, routes)
    staging.stage(settings, EXCEPTIONS, ds, shard, exceptions)
    features = maps.route_features(routes, road, matrix, fastest, _positions(routes, routable)) if len(routes) else []
    staging.stage(settings, MAPS, ds, shard, pd.DataFrame({"feature": [json.dumps(f) for f in features]}))
    served = routes["order_id"].notna().sum() if len(routes) else 0
    summary = {
        "depot_id": depot_id,
        "orders": len(day.orders),
        "served": int(served),
        "exceptions": len(exceptions),
        "exception_reasons": exceptions["reason"].value_counts().to_dict(),
        "vehicles_used": len(solution.routes) if solution else 0,
        "vehicles": day.fleet.vehicles,
        "driving_hours": round(float(routes["leg_seconds"].sum()) / 3600, 2) if len(routes) else 0.0,
        "km": round(float(routes["leg_metres"].sum()) / 1000, 1) if len(routes) else 0.0,
        "feasible": bool(solution.feasible) if solution else True,
        "solve_seconds": round(solution.seconds, 1) if solution else 0.0,
        "road_network": road.source,
        "imputed_speed_share": round(road.imputed_share, 3),
    }
    log.info("routes for depot %s, delivery day %s: %s", depot_id, delivery_day(ds), json.dumps(summary))
    return summary


def _positions(routes: pd.DataFrame, routable: pd.DataFrame) -> pd.Series:
    """Matrix position of each route row (0 for the depot)."""
    pos = routes["order_id"].map(routable.set_index("order_id")["pos"])
    return pos.fillna(0).astype(int)


def publish(settings: Settings, ds: str, depots: int, summaries: list[dict] | None = None, config: RoutingConfig | None = None) -> dict:
    """Gather every depot's staged rows and write the day: routes, exceptions, GeoJSON, HTML map, PNG, summary.
    A day without orders gets empty tables (and maps), so yesterday's rows never stand in for it."""
    features = [json.loads(f) for f in staging.gather(settings, MAPS, ds, depots)["feature"]] if depots else []
    with staging.day_commit(settings, f"publish delivery routes ds={as_date(ds)}") as day:
        if depots:
            routes = staging.publish(settings, ROUTES, ds, depots, change=day)
            exceptions = staging.publish(settings, EXCEPTIONS, ds, depots, change=day)
            staging.discard_older(day, MAPS, ds)
        else:
            routes = staging.write(settings, ROUTES, ds, pd.DataFrame(columns=ROUTE_COLUMNS), change=day)
            exceptions = staging.write(settings, EXCEPTIONS, ds, pd.DataFrame(columns=EXCEPTION_COLUMNS), change=day)
        folder = day.folder("outputs", MAPS, ds)
        collection = maps.coloured(features)
        (folder / "routes.geojson").write_text(json.dumps(collection))
        maps.html_map(collection, folder / "routes.html")
        maps.png_map(collection, folder / "routes.png", network(settings, config) if config and features else None)
        (folder / "summary.json").write_text(
            json.dumps(
                {
                    "ds": as_date(ds).isoformat(),
                    "delivery_day": delivery_day(ds).isoformat(),
                    "routes": routes,
                    "exceptions": exceptions,
                    "depots": summaries or [],
                },
                indent=2,
            )
        )
    target = lake.partition_dir(settings.lake_dir, "outputs", MAPS, ds)
    return {"ds": as_date(ds).isoformat(), "route_rows": routes, "exceptions": exceptions, "maps": str(target)}
