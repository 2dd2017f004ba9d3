"""ecom_delivery_routing, declared once: road network -> one CVRPTW per depot with orders for tomorrow
(mapped) -> publish ``delivery_routes``, ``delivery_exceptions`` and the maps. The DAG, ``ecom route`` and the
Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.errors import ConfigError
from ml.pipeline import (
    ITEMS,
    FanOut,
    Pipeline,
    PipelineConfig,
    Run,
    Step,
    newest_partition,
    option,
)
from ml.settings import Settings

DEFAULT_ROAD_NETWORK = Path("osm") / "derived" / "monaco.drive.osm.bz2"


@dataclass(frozen=True)
class RoutingConfig(PipelineConfig):
    road_network: str | None = option(None, "OSM file .osm.pbf/.osm/.osm.bz2 (empty: the shared Monaco extract)")
    place: str | None = option(None, "Instead of a file: a place name downloaded through osmnx (needs network access)")
    depot: str | None = option(None, "Route only this warehouse (empty: every depot with orders)")
    fleet_size: int | None = option(None, "Vehicles per depot (empty: the warehouses table)", minimum=1)
    vehicle_capacity: int | None = option(None, "Units per vehicle (empty: the warehouses table)", minimum=1)
    time_limit_s: float = option(10.0, "PyVRP time limit per depot", exclusive_minimum=0, maximum=3600)
    shift_start_h: float = option(8.0, "Shift start, UTC hours of the delivery day", minimum=0, maximum=24)
    shift_end_h: float = option(20.0, "Shift end, UTC hours of the delivery day", minimum=0, maximum=24)
    max_route_h: float = option(8.0, "Longest route in hours", exclusive_minimum=0)
    service_min: float = option(3.0, "Minutes at every stop", minimum=0)
    van_cost_min: float = option(30.0, "Each van sent out costs as much as this many minutes of driving", minimum=0)
    max_snap_m: float = option(300.0, "An address farther than this from a road node is not routed", exclusive_minimum=0)
    lookback_days: int = option(7, "Order partitions read for the orders promised for ds + 1", minimum=1, maximum=90)
    no_improvement: int = option(20_000, "PyVRP iterations without a better plan before stopping early", minimum=1)
    seed: int = option(0, "Solver seed", minimum=0)

    def check(self) -> None:
        if not self.shift_start_h < self.shift_end_h:
            raise ConfigError(f"shift {self.shift_start_h}-{self.shift_end_h} h must lie within the day and not be empty")

    def road_file(self, settings: Settings) -> Path:
        return Path(self.road_network) if self.road_network else settings.shared_data_dir / DEFAULT_ROAD_NETWORK


def _road_network(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    """Build (or read from the cache) the road network once, here, so the depot tasks only read the cache."""
    from ml.routing import io, route

    road = io.network(run.settings, run.config)
    return {
        ITEMS: route.depot_ids(run.settings, run.ds, run.config),
        "road_network": road.source,
        "nodes": len(road.nodes),
        "imputed_speed_share": road.imputed_share,
    }


def _route(run: Run, depot: str, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.routing import route

    return route.route_depot(run.settings, run.ds, depot, run.config)


def _publish(run: Run, resolved: dict[str, Any], routed: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.routing import io

    return io.publish(run.settings, run.ds, len(resolved[ITEMS]), list(routed), run.config)


DELIVERY_ROUTING = Pipeline(
    name="route",
    dag_id="ecom_delivery_routing",
    doc=__doc__ or "",
    config=RoutingConfig,
    steps=(Step("road_network", _road_network),),
    fan_out=FanOut("route", _route),
    publish=_publish,
    outputs=("outputs/delivery_routes", "outputs/delivery_exceptions"),
    # the day's risk decisions come first, so a held order is never routed; a manual run without them routes every
    # order and says so
    triggers=("curated/orders", "outputs/order_risk"),
    optional=("outputs/order_risk",),
    default_ds=newest_partition("curated/orders"),
    tags=("routing",),
)
