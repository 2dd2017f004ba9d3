"""ds resolution, Asset-event ds, input checks and strict-JSON return values (what the DAG factory relies on)."""

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from ml import lake
from ml.errors import ConfigError
from ml.ingest_pipeline import INGEST, IngestConfig, request_for
from ml.intervention.pipeline import INTERVENTION
from ml.orchestration import NOT_FINITE, ds_from_asset_events, resolve_ds, xcom_safe
from ml.recsys.pipeline import RECOMMENDATIONS, RecsysConfig

NOON = dt.datetime(2024, 5, 6, 12, tzinfo=dt.UTC)
D = dt.date


def _publish(settings, ref: str, *days: str) -> None:
    zone, table = ref.split("/")
    for day in days:
        lake.write_partition(settings.lake, zone, table, day, pd.DataFrame({"x": [1]}))


def _resolve(settings, pipeline, config=None, *, ds=None, events=None, logical=None, after=None):
    return resolve_ds(pipeline, settings, config or pipeline.config(), param_ds=ds, asset_events=events, logical_date=logical, run_after=after)


def test_ds_param_then_asset_events_then_newest_partition(settings):
    _publish(settings, "curated/events", "2024-01-05", "2024-01-06", "2024-01-09")
    _publish(settings, "curated/customers", "2024-01-05")
    _publish(settings, "curated/products", "2024-01-05")
    assert _resolve(settings, RECOMMENDATIONS, ds="2024-01-06", events={"ecom://curated/events": [{"ds": "2024-01-09"}]})[0] == D(2024, 1, 6)
    assert _resolve(settings, RECOMMENDATIONS, events={"ecom://curated/events": [{"ds": "2024-01-06"}]}, logical=NOON) == (
        D(2024, 1, 6),
        "the triggering Asset events",
    )
    assert _resolve(settings, RECOMMENDATIONS, after=NOON)[0] == D(2024, 1, 9)
    assert _resolve(settings, RECOMMENDATIONS, logical=dt.datetime(2024, 1, 8, tzinfo=dt.UTC))[0] == D(2024, 1, 6)
    with pytest.raises(ConfigError, match="run ecom_ingest first"):
        _resolve(settings, RECOMMENDATIONS, logical=dt.datetime(2023, 1, 1, tzinfo=dt.UTC))


def test_a_ds_without_upstream_output_is_refused_with_the_table_and_the_fix(settings):
    _publish(settings, "curated/events", "2024-01-05")
    _publish(settings, "curated/customers", "2024-01-05")
    _publish(settings, "curated/products", "2024-01-05")
    with pytest.raises(
        ConfigError,
        match=r"curated/events has no partition for that day \(its newest day is 2024-01-05\); "
        r"run ecom_ingest for 2024-01-07 first",
    ):
        _resolve(settings, RECOMMENDATIONS, ds="2024-01-07")
    # dimension tables are snapshots: an older snapshot covers a later day
    _publish(settings, "curated/events", "2024-01-06")
    assert _resolve(settings, RECOMMENDATIONS, ds="2024-01-06")[0] == D(2024, 1, 6)


def test_a_backfilled_older_ds_travels_downstream(settings):
    """Recommendations and segments published for an older day (a manual backfill) start ecom_intervention on that
    same day, not on the newest partition."""
    for ref in (*INTERVENTION.triggers, *INTERVENTION.reads):
        _publish(settings, ref, "2024-02-01", "2024-03-01")
    backfilled = {f"ecom://{ref}": [{"ds": "2024-02-01"}] for ref in INTERVENTION.triggers}
    ds, how = _resolve(settings, INTERVENTION, events=backfilled, after=NOON)
    assert (ds, how) == (D(2024, 2, 1), "the triggering Asset events")
    assert _resolve(settings, INTERVENTION, after=NOON)[0] == D(2024, 3, 1)  # manual, no ds: the newest


def test_disagreeing_events_take_the_newest_ds_every_input_has():
    held = {"a": {D(2024, 1, 1), D(2024, 1, 2)}, "b": {D(2024, 1, 1)}}
    events = {"a": [{"ds": "2024-01-02"}], "b": [{"ds": "2024-01-01"}]}
    assert ds_from_asset_events(events, ["a", "b"], lambda ref, day: day in held[ref]) == D(2024, 1, 1)
    with pytest.raises(ConfigError, match="published by every input"):
        ds_from_asset_events({"a": [{"ds": "2024-01-02"}]}, ["a", "b"], lambda ref, day: day in held[ref])
    with pytest.raises(ConfigError, match="carries no ds"):
        ds_from_asset_events({"a": [{}]}, ["a"], lambda ref, day: True)


def test_unknown_params_are_named_not_dropped():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['epochz'\]"):
        RecsysConfig.from_params({"epochz": 3})
    with pytest.raises(ConfigError, match="must be at least 1"):
        RecsysConfig.from_params({"epochs": 0})
    assert RecsysConfig.from_params({"k": None}).k == 100


def test_return_values_are_strict_json_as_the_execution_api_wants():
    from airflow.sdk.serde import serialize

    value = {"metrics": {"mase": np.float64("nan"), "rows": np.int64(3), "wrmsse": math.inf}, "days": [dt.date(2024, 1, 1)], "scores": np.array([0.5, np.nan])}
    safe = xcom_safe(value)
    assert safe["metrics"] == {"mase": None, "rows": 3, "wrmsse": None}
    assert safe[NOT_FINITE] == ["metrics.mase", "metrics.wrmsse", "scores[1]"]
    json.dumps(serialize(safe), allow_nan=False)  # what the task SDK's HTTP client sends
    with pytest.raises(ValueError, match="Out of range float"):
        json.dumps(serialize(value["metrics"] | {"mase": float("nan")}), allow_nan=False)
    with pytest.raises(TypeError, match="not JSON"):
        xcom_safe({"frame": pd.DataFrame({"x": [1]})})


def test_fill_gap_reaches_back_to_the_lake_newest_day(settings):
    _publish(settings, "curated/orders", "2024-01-05")
    request = request_for(settings, D(2024, 1, 9), IngestConfig(scale="tiny", fill_gap=True))
    assert request.backfill_days == 3  # 2024-01-06..2024-01-09 in one drop
    assert request_for(settings, D(2024, 1, 9), IngestConfig(scale="tiny")).backfill_days is None


@pytest.mark.shared_data
def test_public_dataset_runs_default_to_the_dataset_last_day(settings, shared_data):
    assert _resolve(settings, INGEST, IngestConfig(source="bakery"), logical=NOON)[0] == D(2017, 4, 9)
    assert _resolve(settings, INGEST, IngestConfig(source="bakery"), ds="2017-01-31", logical=NOON)[0] == D(2017, 1, 31)
    assert _resolve(settings, INGEST, IngestConfig(), logical=NOON)[0] == D(2024, 5, 6)


def test_a_forecast_on_an_all_zero_window_returns_strict_json_with_its_nulls_named(settings):
    """The failure seen under the real scheduler: one product sold once, then nothing; every backtest window is all
    zeros, so the ratio to seasonal naive is 0/0. Every step's return value must still be what the Execution API
    accepts, with the undefined figure as null and named."""
    from airflow.sdk.serde import serialize

    from ml.forecast.pipeline import DEMAND_FORECAST, ForecastConfig

    start = dt.date(2024, 1, 1)
    for i in range(60):
        day = start + dt.timedelta(days=i)
        ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=10)
        sold = i == 0
        orders = pd.DataFrame(
            {
                "order_id": ["O1"] if sold else [],
                "customer_id": ["C1"] if sold else [],
                "order_ts": [ts] if sold else [],
                "warehouse_id": ["W1"] if sold else [],
            }
        )
        items = pd.DataFrame(
            {
                "order_id": ["O1"] if sold else [],
                "product_id": ["P1"] if sold else [],
                "qty": [2.0] if sold else [],
                "unit_price": [1.0] if sold else [],
                "discount": [0.0] if sold else [],
            }
        )
        lake.write_partition(settings.lake, "curated", "orders", day, orders.astype({"order_ts": "datetime64[us, UTC]"}))
        lake.write_partition(settings.lake, "curated", "order_items", day, items)
    config = ForecastConfig(model="seasonal_naive", horizon=7, origins=2, origin_step=7, shards=1)
    out = DEMAND_FORECAST.run(settings, start + dt.timedelta(days=59), config)
    backtest = out["steps"]["backtest"]
    assert backtest["metrics"]["model"]["mase"] == 0.0 and backtest["metrics"]["model"]["mase_vs_seasonal_naive"] is None
    assert "metrics.model.mase_vs_seasonal_naive" in backtest["null_because_not_finite"]
    for value in (*out["steps"].values(), *out["forecast"], out["publish"]):
        json.dumps(serialize(value), allow_nan=False)


def test_every_step_of_every_pipeline_returns_what_the_execution_api_accepts(settings):
    """Each pipeline in one process on the tiny shop (Pipeline.run hands every return value on as XCom would);
    every value, serialised by Airflow's serde, must be strict JSON. A day whose orders all go unrouted for lack of
    a fleet, and an intervention budget of zero, are the degenerate ends."""
    from airflow.sdk.serde import serialize

    from ml.associations.pipeline import ASSOCIATIONS
    from ml.cli import run_pipeline
    from ml.forecast.pipeline import DEMAND_FORECAST
    from ml.inventory.pipeline import INVENTORY_PLAN
    from ml.routing.pipeline import DELIVERY_ROUTING
    from ml.segments.pipeline import SEGMENTS

    ds = "2024-03-30"
    runs = [
        run_pipeline(INGEST, ds, {"scale": "tiny", "backfill_days": 89}),
        run_pipeline(RECOMMENDATIONS, ds, {"model": "popularity", "k": 5, "shards": 2}),
        run_pipeline(DEMAND_FORECAST, ds, {"model": "seasonal_naive", "horizon": 7, "origins": 2, "origin_step": 7, "shards": 1}),
        run_pipeline(INVENTORY_PLAN, ds, {"time_limit_s": 30}),
        run_pipeline(INTERVENTION, ds, {"holdout_campaigns": 1, "budget": 0}),
        run_pipeline(DELIVERY_ROUTING, ds, {"time_limit_s": 1, "fleet_size": 1, "vehicle_capacity": 1}),
        run_pipeline(ASSOCIATIONS, ds, {"window_days": 30}),
        run_pipeline(SEGMENTS, ds, {"k_max": 4, "stability_fits": 2}),
    ]
    for out in runs:
        json.dumps(serialize(out), allow_nan=False)
    assert runs[4]["publish"]["rows"] == 0 and runs[5]["publish"]["exceptions"] > 0
