"""What DAG tasks need beyond the pipeline steps: the run's logical date, its parameters, asset names.

Kept free of Airflow imports so it is testable on its own; DAG files pass plain values in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ml import contract
from ml.errors import ConfigError
from ml.dates import as_date
from ml.settings import Settings
from ml.sources import SOURCE_NAMES, SourceRequest


def curated_asset_uri(table: str) -> str:
    """URI of the Airflow Asset that stands for a curated contract table."""
    contract.table(table)
    return f"ecom://curated/{table}"


CURATED_ASSET_URIS = {name: curated_asset_uri(name) for name in contract.TABLES}


def resolve_ds(param_ds: str | None, logical_date: dt.datetime | None, run_after: dt.datetime | None) -> str:
    """The run's ds: the ``ds`` Param when set (manual runs), else the logical date, else the run's date."""
    if param_ds:
        return as_date(param_ds).isoformat()
    moment = logical_date or run_after
    if moment is None:
        raise ConfigError("the run has neither a ds Param nor a logical date; trigger it with a ds")
    return moment.date().isoformat()


def ingest_ds(settings: Settings, params: dict[str, Any], logical_date: dt.datetime | None, run_after: dt.datetime | None) -> str:
    """ds of an ingest run: the ``ds`` Param, else a public dataset's last day (its data ends years ago), else
    the logical date."""
    from ml.sources import public

    source = params.get("source") or "synthetic"
    if not params.get("ds") and source in public.DATASETS:
        return public.last_day(settings, source, params.get("path")).isoformat()
    return resolve_ds(params.get("ds"), logical_date, run_after)


def ingest_request(settings: Settings, params: dict[str, Any], ds: str) -> SourceRequest:
    """A SourceRequest from the DAG's Params (validated by their JSON schema in the UI as well)."""
    source = params.get("source") or "synthetic"
    if source not in SOURCE_NAMES:
        raise ConfigError(f"Param source={source!r} is not one of {SOURCE_NAMES}")
    backfill = params.get("backfill_days")
    return SourceRequest(
        source=source,
        ds=ds,
        scale=params.get("scale") or settings.default_scale,
        seed=int(params.get("seed") or settings.seed),
        backfill_days=None if backfill is None else int(backfill),
        path=params.get("path") or None,
    )
