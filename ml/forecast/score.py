"""Daily forecasting with the champion: P10/P50/P90 for the ``horizon`` days after ds for every (product,
warehouse) series, written to ``demand_forecasts(ds, product_id, warehouse_id, target_date, p10, p50, p90,
model_version)`` in the lake's outputs zone and the serving store, one ds replaced at once.

In the DAG the series are split into shards (a stable hash of product and warehouse), so per-series methods
(ETS) spread over mapped tasks; ``publish`` gathers the shards."""

from __future__ import annotations

import datetime as dt
import logging
import time

from ml import contract, parallel
from ml.forecast import io, train
from ml.forecast.data import Panel
from ml.forecast.pipeline import ForecastConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

COLUMNS = tuple(contract.table(io.TABLE).column_names)


def shard(panel: Panel, number: int, shards: int) -> Panel:
    """The series of one shard (all of them when ``shards`` is 1)."""
    return panel.rows(parallel.shard_of(panel.keys["product_id"] + "@" + panel.keys["warehouse_id"], shards) == number)


def forecast_shard(settings: Settings, ds: dt.date, number: int, config: ForecastConfig, version: str) -> dict:
    """Forecast one of ``config.shards`` shards of the series with champion ``version`` and stage the rows; the
    panel has the champion's frequency."""
    forecaster = train.load_forecaster(settings, f"models:/{train.MODEL_NAME}/{version}")
    shards = config.shards
    panel = shard(io.load_panel(settings, ds, config.history_days, forecaster.frequency), number, shards)
    t0 = time.perf_counter()
    rows = forecaster.forecast_rows(panel).assign(ds=ds.isoformat(), model_version=str(version))
    seconds = time.perf_counter() - t0
    staged = io.stage_forecasts(settings, ds, number, rows[list(COLUMNS)])
    log.info(
        "shard %d/%d of ds=%s: %d series forecast %d %s periods ahead by %s v%s in %.1fs (%.0f series/s)",
        number,
        shards,
        ds,
        panel.n_series,
        forecaster.horizon,
        forecaster.frequency,
        forecaster.kind,
        version,
        seconds,
        panel.n_series / max(seconds, 1e-9),
    )
    return {"shard": number, "series": panel.n_series, "rows": staged, "version": version}
