"""The solved routes as rows of ``delivery_routes`` (one per stop, depot departure and return included, ETAs as
UTC timestamps) and the orders the fleet could not fit as ``delivery_exceptions``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml import contract
from ml.routing.data import DepotDay
from ml.routing.graph import RoadNetwork
from ml.routing.matrix import TravelMatrix
from ml.routing.model import RoutingSolution
from ml.routing.screening import clock

ROUTE_COLUMNS = contract.table("delivery_routes").column_names
EXCEPTION_COLUMNS = contract.table("delivery_exceptions").column_names


def route_rows(
    ds: dt.date, day: DepotDay, orders: pd.DataFrame, matrix: TravelMatrix, solution: RoutingSolution, road: RoadNetwork, fastest: dict
) -> pd.DataFrame:
    """One row per stop: the depot departure (stop 0), each delivery, the return; ETAs as UTC timestamps."""
    midnight = pd.Timestamp(ds + dt.timedelta(days=1), tz="UTC")
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
    return frame.assign(ds=ds.isoformat())[ROUTE_COLUMNS]


def path_metres(matrix: TravelMatrix, i: int, j: int, fastest: dict) -> float:
    return float(sum(m for _, m, _ in matrix.path_edges(i, j, fastest)))


def risk_held(on_hold: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """Exceptions for the orders the risk decisions hold: not shipped until the review clears them."""
    reasons = held.drop_duplicates("order_id").set_index("order_id")["reasons"]
    return pd.DataFrame(
        {"order_id": on_hold["order_id"], "reason": "risk_hold", "detail": "held for fraud review: " + on_hold["order_id"].map(reasons).fillna("")}
    )


def fleet_full(dropped: pd.DataFrame, day: DepotDay) -> pd.DataFrame:
    """Exceptions for the routable orders the solver left out: the fleet had no room for them."""
    fleet = day.fleet
    return pd.DataFrame(
        {
            "order_id": dropped["order_id"],
            "reason": "fleet_full",
            "detail": f"no room left on {fleet.vehicles} vehicles of {fleet.capacity} units within the shift "
            f"{clock(fleet.shift_start)}-{clock(fleet.shift_end)} (max route {fleet.max_duration / 3600:g} h)",
        }
    )


def positions(routes: pd.DataFrame, routable: pd.DataFrame) -> pd.Series:
    """Matrix position of each route row (0 for the depot)."""
    pos = routes["order_id"].map(routable.set_index("order_id")["pos"])
    return pos.fillna(0).astype(int)
