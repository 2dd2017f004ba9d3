"""Tomorrow's delivery routes: the orders promised for ds + 1, per depot (warehouse), on the road network; one
CVRPTW per depot (a mapped task each), then ``io.publish`` writes the day.

Outputs for ds: ``delivery_routes`` (one row per stop, depot departures and returns included),
``delivery_exceptions`` (every order that is not on a route, with the reason), and beside them in the lake
``delivery_maps/ds=.../`` the routes as GeoJSON, an HTML map (folium), a PNG and ``summary.json``.

An order that cannot be served (no address, address far from any road, no road path to or from the depot,
heavier than a vehicle, a time window no vehicle can keep, or no room left in the fleet) is reported and the
rest of the day is still routed. An order that ``order_risk`` holds is not routed either: it is reported with the
reason ``risk_hold`` and the risk model's reasons."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd

from ml.errors import ConfigError, EcomError
from ml.routing import io, maps
from ml.routing.data import depot_day
from ml.routing.matrix import fastest_edges
from ml.routing.model import solve
from ml.routing.pipeline import RoutingConfig
from ml.routing.rows import EXCEPTION_COLUMNS, ROUTE_COLUMNS, fleet_full, positions, risk_held, route_rows
from ml.routing.screening import routing_problem, screen
from ml.settings import Settings

log = logging.getLogger(__name__)


def depot_ids(settings: Settings, ds: dt.date, config: RoutingConfig, orders: pd.DataFrame | None = None) -> list[str]:
    """Depots with orders for ds + 1, in a fixed order (their index is the staging shard)."""
    orders = io.load_orders(settings, ds, config) if orders is None else orders
    depots = sorted(orders["warehouse_id"].dropna().unique()) if len(orders) else []
    if config.depot and config.depot not in depots:
        known = sorted(io.load_warehouses(settings, ds)["warehouse_id"])
        if config.depot not in known:
            raise ConfigError(f"depot {config.depot!r} is not a warehouse; warehouses are {known}")
    return depots


def route_depot(settings: Settings, ds: dt.date, depot_id: str, config: RoutingConfig) -> dict:
    """Route one depot's orders for ds + 1 and stage its rows, exceptions and map features; returns a summary."""
    orders = io.load_orders(settings, ds, config)
    depots = depot_ids(settings, ds, config, orders)
    if depot_id not in depots:
        raise EcomError(f"depot {depot_id!r} has no orders promised for {io.delivery_day(ds)} (depots with orders: {depots})")
    warehouses = io.load_warehouses(settings, ds)
    mine = orders[orders["warehouse_id"] == depot_id]
    held, unscreened = io.held_orders(settings, ds, config)
    if unscreened:
        log.warning("no order_risk for %s: those days' orders are routed without risk decisions", [d.isoformat() for d in unscreened])
    on_hold = mine[mine["order_id"].isin(held["order_id"])]
    day = depot_day(mine[~mine["order_id"].isin(held["order_id"])], warehouses.loc[depot_id], config, io.delivery_day(ds))
    road = io.network(settings, config)
    routable, exceptions, matrix = screen(day, road)
    exceptions = pd.concat([exceptions, risk_held(on_hold, held)], ignore_index=True)
    solution = None
    if matrix is not None and len(routable):
        solution = solve(routing_problem(day, routable, matrix), config.time_limit_s, config.seed, config.no_improvement)
    fastest = fastest_edges(road)
    routes = route_rows(ds, day, routable, matrix, solution, road, fastest) if solution and matrix is not None else pd.DataFrame(columns=ROUTE_COLUMNS)
    if solution and solution.unserved:
        dropped = routable.iloc[[s - 1 for s in solution.unserved]]
        exceptions = pd.concat([exceptions, fleet_full(dropped, day)], ignore_index=True)
    exceptions = exceptions.assign(ds=ds.isoformat(), depot_id=depot_id)[EXCEPTION_COLUMNS]
    features = maps.route_features(routes, road, matrix, fastest, positions(routes, routable)) if len(routes) and matrix is not None else []
    io.stage_depot(settings, ds, depots.index(depot_id), routes, exceptions, features)
    served = routes["order_id"].notna().sum() if len(routes) else 0
    summary = {
        "depot_id": depot_id,
        "orders": len(day.orders) + len(on_hold),
        "risk_held": len(on_hold),
        "risk_unscreened_days": [d.isoformat() for d in unscreened],
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
    log.info("routes for depot %s, delivery day %s: %s", depot_id, io.delivery_day(ds), json.dumps(summary))
    return summary
