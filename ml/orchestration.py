"""What a DAG run needs beyond the pipeline steps: which ds it runs on, and return values XCom can carry.

Kept free of Airflow imports so it is testable on its own; the DAG factory passes plain values in.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ml.dates import as_date
from ml.errors import ConfigError
from ml.pipeline import Pipeline, producer_of, table_ref
from ml.settings import Settings

DAG_DEFAULTS: dict[str, Any] = {
    "start_date": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "catchup": False,  # history is loaded by backfill drops, not by replaying old schedules
    "max_active_runs": 1,  # runs of one pipeline replace the same ds partitions: never two at once
    "default_args": {"retries": 1, "retry_delay": dt.timedelta(minutes=2)},
}
"""Keyword arguments every ecom DAG shares."""

NOT_FINITE = "null_because_not_finite"
"""Key listing where :func:`xcom_safe` replaced NaN or infinity by null (e.g. MASE on an all-zero window)."""


def xcom_safe(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars and arrays become Python values, dates ISO strings, and NaN or
    infinity becomes null, with the dotted paths of those nulls listed under ``null_because_not_finite`` of a
    top-level dict. The Execution API refuses NaN (``dag.test()`` does not), so every task's return passes here."""
    replaced: list[str] = []
    out = _plain(value, "", replaced)
    if replaced and isinstance(out, dict):
        out[NOT_FINITE] = sorted(set(out.get(NOT_FINITE, [])) | set(replaced))
    elif replaced:
        out = {"value": out, NOT_FINITE: replaced}
    return out


def _plain(value: Any, path: str, replaced: list[str]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}" if path else str(k), replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, f"{path}[{i}]", replaced) for i, v in enumerate(value)]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):  # numpy scalars and arrays
        return _plain(value.tolist(), path, replaced)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        replaced.append(path or "value")
        return None
    raise TypeError(f"{path or 'value'}: {type(value).__name__} is not JSON; return small plain values (write data to the lake)")


def ds_from_asset_events(events: Mapping[str, list[Mapping[str, Any]]], inputs: Sequence[str], holds: Callable[[str, dt.date], bool]) -> dt.date:
    """The ds an Asset-triggered run works on: the ds its triggering events carry (``extra["ds"]``). When they
    disagree, the newest of them that every input (``holds(input, ds)``) has published.

    An event without a ds (for instance one created by hand in the UI without ``{"ds": ...}``) is an error: the
    run must be told its day, never guess it."""
    carried: set[dt.date] = set()
    for uri, extras in events.items():
        for extra in extras:
            if not extra or not extra.get("ds"):
                raise ConfigError(
                    f"an Asset event on {uri} carries no ds (extra={dict(extra or {})}); producers set "
                    "extra={'ds': 'YYYY-MM-DD'}. Trigger this DAG with a ds Param instead"
                )
            carried.add(as_date(extra["ds"]))
    if not carried:
        raise ConfigError("the run was triggered by Asset events but none was passed to it")
    for day in sorted(carried, reverse=True):
        if all(holds(ref, day) for ref in inputs):
            return day
    lacking = {day.isoformat(): [ref for ref in inputs if not holds(ref, day)] for day in sorted(carried)}
    raise ConfigError(
        f"no ds carried by the triggering events is published by every input: {lacking}; "
        "run the producers of the inputs for that ds, or trigger with a ds Param"
    )


def holds_ds(settings: Settings, ref: str, ds: dt.date) -> bool:
    """Whether lake table ``zone/table`` has published ds: that day's partition, or for a dimension (a snapshot
    table such as customers) any snapshot at or before it."""
    from ml import contract, lake

    zone, table = table_ref(ref)
    days = lake.list_partitions(settings.lake, zone, table)
    if zone == "curated" and contract.table(table).kind == "dimension":
        return bool(days) and days[0] <= ds
    return ds in days


def resolve_ds(
    pipeline: Pipeline,
    settings: Settings,
    config: Any,
    *,
    param_ds: str | None,
    asset_events: Mapping[str, list[Mapping[str, Any]]] | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
) -> tuple[dt.date, str]:
    """The run's ds and how it was chosen, resolved once at the boundary:

    1. the ``ds`` Param (manual runs, backfills);
    2. the ds carried by the triggering Asset events (downstream runs, also of a backfilled older ds);
    3. the pipeline's ``default_ds`` for a run without either (model pipelines: the newest input partition at or
       before the run's date; ingest: a public dataset's last day);
    4. the run's logical date (``ecom_ingest``'s daily schedule).

    An interrupted commit is finished first, so the run sees whole days only.
    """
    from ml import lake

    lake.recover(settings.lake, settings.serving_url)
    if param_ds:
        ds, how = as_date(param_ds), "the ds Param"
    elif asset_events:
        holds = functools.partial(holds_ds, settings)
        ds, how = ds_from_asset_events(asset_events, pipeline.triggers, holds), "the triggering Asset events"
    else:
        moment = logical_date or run_after
        found = pipeline.default_ds(settings, config, moment.date() if moment else None) if pipeline.default_ds else None
        if found is not None:
            ds, how = found, "the pipeline's default for a run without a ds"
        elif moment is not None:
            ds, how = moment.date(), "the run's logical date"
        else:
            raise ConfigError(f"{pipeline.dag_id}: the run has neither a ds Param nor a logical date; trigger it with a ds")
    require_inputs(settings, pipeline, ds)
    return ds, how


def require_inputs(settings: Settings, pipeline: Pipeline, ds: dt.date) -> None:
    """Refuse to start on a ds that an input has not published, naming the table, its newest day and the fix."""
    from ml import lake

    for ref in pipeline.inputs:
        if not holds_ds(settings, ref, ds):
            days = lake.list_partitions(settings.lake, *table_ref(ref))
            newest = f"its newest day is {days[-1]}" if days else "it has no partition at all"
            raise ConfigError(f"{pipeline.dag_id} ds={ds}: {ref} has no partition for that day ({newest}); run {producer_of(ref)} for {ds} first")
