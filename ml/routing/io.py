"""Everything routing reads and writes: the road network (cached under ECOM_HOME), the orders and warehouses in
the curated lake, each depot's staged rows, and the day's publish (routes, exceptions and maps in one commit)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from ml import lake, staging
from ml.routing import maps
from ml.routing.graph import RoadNetwork, load_network, load_place
from ml.routing.pipeline import RoutingConfig
from ml.routing.rows import EXCEPTION_COLUMNS, ROUTE_COLUMNS
from ml.settings import Settings

ROUTES = "delivery_routes"
EXCEPTIONS = "delivery_exceptions"
RISK = "order_risk"
MAPS = "delivery_maps"


def delivery_day(ds: dt.date) -> dt.date:
    return ds + dt.timedelta(days=1)


def network(settings: Settings, config: RoutingConfig) -> RoadNetwork:
    """The configured road network, built once and then read from the cache under ECOM_HOME (a downloaded place
    is cached by its name: delete its folder to download it again)."""
    cache = settings.home / "cache" / "roads"
    if config.place:
        return load_place(config.place, cache)
    return load_network(config.road_file(settings), cache_dir=cache)


def load_orders(settings: Settings, ds: dt.date, config: RoutingConfig) -> pd.DataFrame:
    """Orders promised for ds + 1 (from the order partitions of the last ``lookback_days`` days), with their load in
    units (order lines summed, fractions rounded up)."""
    start = ds - dt.timedelta(days=config.lookback_days - 1)
    orders = lake.read_range(settings.lake, "curated", "orders", start, ds)
    if orders.empty:
        return orders.assign(demand=pd.Series(dtype="int64"))
    day = pd.Timestamp(delivery_day(ds), tz="UTC")
    orders = orders[pd.to_datetime(orders["promised_date"], utc=True) == day]
    if config.depot:
        orders = orders[orders["warehouse_id"] == config.depot]
    items = lake.read_range(settings.lake, "curated", "order_items", start, ds)
    units = items[items["order_id"].isin(orders["order_id"])].groupby("order_id")["qty"].sum()
    return orders.assign(demand=np.ceil(orders["order_id"].map(units).fillna(0).to_numpy()).astype(np.int64)).reset_index(drop=True)


def held_orders(settings: Settings, ds: dt.date, config: RoutingConfig) -> tuple[pd.DataFrame, list[dt.date]]:
    """The orders ``order_risk`` holds among those the routing reads (order_id, reasons), and the days in that
    range with no risk decisions published (their orders are routed unscreened)."""
    days = [ds - dt.timedelta(days=back) for back in range(config.lookback_days)]
    published = set(lake.list_partitions(settings.lake, "outputs", RISK))
    frames = [
        lake.read_partition(settings.lake, "outputs", RISK, day, columns=["order_id", "reasons"], filters=[("decision", "==", "hold")])
        for day in days
        if day in published
    ]
    held = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"order_id": pd.Series(dtype=str), "reasons": pd.Series(dtype=str)})
    return held, sorted(day for day in days if day not in published)


def load_warehouses(settings: Settings, ds: dt.date) -> pd.DataFrame:
    """The newest warehouses snapshot at ds, indexed by warehouse_id."""
    return lake.read_latest(settings.lake, "curated", "warehouses", ds).set_index("warehouse_id", drop=False)


def stage_depot(settings: Settings, ds: dt.date, shard: int, routes: pd.DataFrame, exceptions: pd.DataFrame, features: list[dict]) -> None:
    """One depot's rows, exceptions and map features, staged until the day's publish."""
    staging.stage(settings, ROUTES, ds, shard, routes)
    staging.stage(settings, EXCEPTIONS, ds, shard, exceptions)
    staging.stage(settings, MAPS, ds, shard, pd.DataFrame({"feature": [json.dumps(f) for f in features]}))


def publish(settings: Settings, ds: dt.date, depots: int, summaries: list[dict] | None = None, config: RoutingConfig | None = None) -> dict:
    """Gather every depot's staged rows and write the day: routes, exceptions, GeoJSON, HTML map, PNG, summary.
    A day without orders gets empty tables (and maps), so yesterday's rows never stand in for it."""
    features = [json.loads(f) for f in staging.gather(settings, MAPS, ds, depots)["feature"]] if depots else []
    with staging.day_commit(settings, f"publish delivery routes ds={ds}") as day:
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
                {"ds": ds.isoformat(), "delivery_day": delivery_day(ds).isoformat(), "routes": routes, "exceptions": exceptions, "depots": summaries or []},
                indent=2,
            )
        )
    return {"ds": ds.isoformat(), "route_rows": routes, "exceptions": exceptions, "maps": lake.partition_location(settings.lake, "outputs", MAPS, ds)}
