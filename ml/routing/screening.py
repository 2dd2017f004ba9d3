"""Which orders of one depot's day a route can serve: snap the depot and the addresses to the road network,
compute the travel matrix, and set aside (with a reason a dispatcher can act on) every order without an address,
far from any road, unreachable, heavier than a vehicle or with a time window no vehicle can keep; then the
CVRPTW over what is left."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.routing.data import DepotDay
from ml.routing.graph import RoadNetwork
from ml.routing.matrix import TravelMatrix, snap, travel_matrix
from ml.routing.model import RoutingProblem


def clock(seconds: float) -> str:
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
            f"window {clock(a)}-{clock(b)} cannot be kept: the earliest arrival from depot {day.depot_id} is {clock(e)}"
            for a, b, e in zip(orders.loc[late, "tw_start"], orders.loc[late, "tw_end"], fleet.shift_start + out_s[late], strict=True)
        ],
    )
    reject(
        orders[no_return],
        "time_window",
        [f"after serving it at {clock(e)} no vehicle can be back by the shift end {clock(fleet.shift_end)}" for e in earliest[no_return]],
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
