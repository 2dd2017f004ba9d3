"""What DAG tasks need beyond the pipeline steps: the run's logical date, its parameters, asset names.

Kept free of Airflow imports so it is testable on its own; DAG files pass plain values in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Self

from ml import contract
from ml.dates import as_date
from ml.errors import ConfigError
from ml.settings import Settings
from ml.sources import SOURCE_NAMES, SourceRequest

DAG_DEFAULTS: dict[str, Any] = {
    "start_date": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "catchup": False,  # history is loaded by backfill drops, not by replaying old schedules
    "max_active_runs": 1,  # runs of one pipeline replace the same ds partitions: never two at once
    "default_args": {"retries": 1, "retry_delay": dt.timedelta(minutes=2)},
}
"""Keyword arguments every ecom DAG shares (``@dag(..., **DAG_DEFAULTS)``)."""


class ParamsConfig:
    """Mixin for a pipeline's frozen config dataclass: built from DAG Params or CLI options, and back to a plain
    dict for XCom. Unknown keys and None values are ignored; lists become tuples where the field is a tuple."""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in params.items() if k in fields and v is not None}
        for name, value in chosen.items():
            if isinstance(fields[name].default, tuple):
                chosen[name] = tuple(value)
        return cls(**chosen)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def curated_asset_uri(table: str) -> str:
    """URI of the Airflow Asset that stands for a curated contract table."""
    contract.table(table)
    return f"ecom://curated/{table}"


CURATED_ASSET_URIS = {name: curated_asset_uri(name) for name in contract.TABLES}


def output_asset_uri(table: str) -> str:
    """URI of the Airflow Asset that stands for a pipeline's output table (recommendations, forecasts, ...)."""
    return f"ecom://outputs/{table}"


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


def pipeline_ds(settings: Settings, param_ds: str | None, logical_date: dt.datetime | None, run_after: dt.datetime | None,
                table: str = "events", zone: str = "curated") -> str:
    """ds of a model pipeline run: the ``ds`` Param when set, else the newest ``zone/table`` partition at or
    before the run's date (asset-triggered runs have no logical date; the data may lag the calendar)."""
    from ml import lake

    if param_ds:
        return as_date(param_ds).isoformat()
    moment = logical_date or run_after
    limit = moment.date() if moment else dt.date.max
    days = [d for d in lake.list_partitions(settings.lake_dir, zone, table) if d <= limit]
    if not days:
        when = f" at or before {limit}" if moment else ""
        producer = "ecom_ingest" if zone == "curated" else f"the pipeline that writes {table}"
        raise ConfigError(f"no {zone} {table} partition{when} under {settings.lake_dir}; run {producer} first")
    return days[-1].isoformat()
