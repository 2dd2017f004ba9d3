"""ecom_delivery_routing: road network -> depots with orders for tomorrow -> one CVRPTW per depot (mapped) ->
publish delivery_routes, delivery_exceptions and the route maps.

Runs daily after the curated orders land, and on demand from the UI with Params (ds, depot, fleet size, time
limit, road network file). Orders that cannot be served are listed with the reason; the rest are routed.
Logic lives in ``ml.routing``; this file only wires tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import CURATED_ASSET_URIS, DAG_DEFAULTS, output_asset_uri

ORDERS = Asset(uri=CURATED_ASSET_URIS["orders"], name="curated.orders")
DELIVERY_ROUTES = Asset(uri=output_asset_uri("delivery_routes"), name="outputs.delivery_routes")


@dag(
    dag_id="ecom_delivery_routing",
    schedule=[ORDERS],
    tags=["ecom", "routing"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Order date: routes the orders promised for the next day (default: newest orders)"),
        "depot": Param(None, type=["null", "string"], description="Route only this warehouse (empty: every depot with orders)"),
        "fleet_size": Param(None, type=["null", "integer"], minimum=1, description="Vehicles per depot (empty: the warehouses table)"),
        "time_limit_s": Param(10, type="number", exclusiveMinimum=0, maximum=3600, description="PyVRP time limit per depot"),
        "road_network": Param(None, type=["null", "string"], description="OSM file .osm.pbf/.osm/.osm.bz2 (empty: the shared Monaco extract)"),
        "place": Param(None, type=["null", "string"], description="Instead of a file: a place name downloaded through osmnx (needs network access)"),
    },
)
def ecom_delivery_routing():
    @task
    def road_network() -> dict:
        from ml.orchestration import pipeline_ds
        from ml.routing.plan import RoutingConfig, depot_ids, network
        from ml.settings import get_settings

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        settings = get_settings()
        ds = pipeline_ds(settings, params.get("ds"), run.logical_date, run.run_after, table="orders")
        config = RoutingConfig.from_params(dict(params))
        road = network(settings, config)  # built once here; the depot tasks read the cache
        return {"ds": ds, "config": config.as_dict(), "depots": depot_ids(settings, ds, config),
                "road_network": road.source, "nodes": len(road.nodes), "imputed_speed_share": road.imputed_share}

    @task
    def depots(planned: dict) -> list[str]:
        return planned["depots"]

    @task
    def route(depot: str, planned: dict) -> dict:
        from ml.routing.plan import RoutingConfig, route_depot
        from ml.settings import get_settings

        return route_depot(get_settings(), planned["ds"], depot, RoutingConfig.from_params(planned["config"]))

    @task(outlets=[DELIVERY_ROUTES], trigger_rule="none_failed")
    def publish(planned: dict, routed: list[dict]) -> dict:
        from ml.routing.plan import RoutingConfig
        from ml.routing.plan import publish as write
        from ml.settings import get_settings

        return write(get_settings(), planned["ds"], len(planned["depots"]), list(routed), RoutingConfig.from_params(planned["config"]))

    planned = road_network()
    routed = route.partial(planned=planned).expand(depot=depots(planned))
    publish(planned, routed)


ecom_delivery_routing()
