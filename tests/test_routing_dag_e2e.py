"""ecom_delivery_routing end to end with dag.test() on the tiny shop over the Monaco road network: every order
promised for tomorrow is either on a route (within its window and the vehicle's capacity) or reported with a
reason; maps are written; a rerun replaces the day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from ml import ingest, lake, serving
from ml.sources import SourceRequest
from ml.sources.synthetic import scale_config

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def test_routes_cover_tomorrows_orders_and_reruns_replace(airflow_db, settings, shared_data):
    from airflow.dag_processing.dagbag import DagBag

    end = scale_config("tiny").end
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny", backfill_days=6))
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("ecom_delivery_routing")
    when = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    conf = {
        "ds": end.isoformat(),
        "time_limit_s": 2,
        "depot": None,
        "fleet_size": 1,
        "road_network": str(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2"),
    }
    for attempt in range(2):
        run = dag.test(logical_date=when + dt.timedelta(minutes=attempt), run_conf=conf)
        assert str(run.state) == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}

    orders = lake.read_range(settings.lake, "curated", "orders", end - dt.timedelta(days=6), end)
    tomorrow = orders[pd.to_datetime(orders["promised_date"]).dt.date == end + dt.timedelta(days=1)]
    routes = serving.read_ds(settings.serving_url, "delivery_routes", end)
    exceptions = serving.read_ds(settings.serving_url, "delivery_exceptions", end)
    served = set(routes["order_id"].dropna())
    assert len(served) > 0
    assert served | set(exceptions["order_id"]) == set(tomorrow["order_id"]) and not served & set(exceptions["order_id"])
    assert not routes.duplicated(["depot_id", "vehicle_id", "stop_seq"]).any()
    assert routes.groupby("depot_id")["vehicle_id"].nunique().max() == 1  # fleet_size Param
    stops = routes[routes["order_id"].notna()]
    eta, start, finish = (pd.to_datetime(stops[c], utc=True, format="ISO8601") for c in ("eta", "window_start", "window_end"))
    assert ((eta >= start) & (eta <= finish)).all()
    capacity = int(lake.read_latest(settings.lake, "curated", "warehouses", end)["vehicle_capacity"].max())
    assert (routes.groupby("vehicle_id")["load"].max() <= capacity).all()
    assert set(exceptions["reason"]) <= {"fleet_full", "time_window", "over_capacity", "address_off_network", "unreachable", "no_address"}
    assert len(lake.read_partition(settings.lake, "outputs", "delivery_routes", end)) == len(routes)

    with lake.local_folder(settings.lake, "outputs", "delivery_maps", end) as maps:
        collection = json.loads((maps / "routes.geojson").read_text())
        lines = [f for f in collection["features"] if f["properties"]["kind"] == "route"]
        assert len(lines) == routes["vehicle_id"].nunique() and all(len(f["geometry"]["coordinates"]) > 2 for f in lines)
        assert (maps / "routes.png").stat().st_size > 10_000 and "leaflet" in (maps / "routes.html").read_text().lower()
        summary = json.loads((maps / "summary.json").read_text())
    assert summary["routes"] == len(routes) and summary["delivery_day"] == (end + dt.timedelta(days=1)).isoformat()
