"""ecom_ingest, declared once: land the day's raw drop -> validate it (the gate) -> publish the curated tables.
The DAG (daily, and manual with Params), ``ecom ingest`` and the Params derive from it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ml import contract
from ml.pipeline import Pipeline, PipelineConfig, Run, Step, option
from ml.settings import Settings
from ml.sources import SOURCE_NAMES, SourceRequest


@dataclass(frozen=True)
class IngestConfig(PipelineConfig):
    source: str = option("synthetic", "Where the drop comes from", choices=SOURCE_NAMES)
    scale: str | None = option(None, "Synthetic shop size (empty: ECOM_SCALE)", choices=("tiny", "demo", "large"))
    backfill_days: int | None = option(None, "Days before ds that the drop covers too", minimum=0, maximum=3650)
    fill_gap: bool = option(False, "Also land every day between the curated lake's newest day and ds (one drop)")
    path: str | None = option(None, "Input folder (files source) or dataset folder")
    allow_extra_columns: bool = option(False, "Accept columns the contract does not have (ignored and reported) instead of refusing the drop")


def request_for(settings: Settings, ds: dt.date, config: IngestConfig) -> SourceRequest:
    """The source request of a run; with ``fill_gap`` its window reaches back to the day after the lake's newest."""
    backfill = config.backfill_days
    if config.fill_gap:
        from ml import ingest

        newest = ingest.newest_curated_day(settings, before=ds)
        if newest is not None:
            backfill = max(backfill or 0, (ds - newest).days - 1)
    return SourceRequest(
        source=config.source,
        ds=ds,
        scale=config.scale or settings.default_scale,
        seed=settings.seed,
        backfill_days=backfill,
        path=config.path,
        allow_extra_columns=config.allow_extra_columns,
    )


def _default_ds(settings: Settings, config: IngestConfig, limit: dt.date | None) -> dt.date | None:
    """A public dataset's drop is its last day (its data ends years ago); outside Airflow (no run date) the
    synthetic shop's is the last day of its history; otherwise the run's logical date."""
    from ml.sources import public, synthetic_source

    if config.source in public.DATASETS:
        return public.last_day(settings, config.source, config.path)
    if config.source == "synthetic" and limit is None:
        return synthetic_source.shop_config(settings, config.scale or settings.default_scale).end
    return None


def _land(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml import ingest

    ingest.ensure_dirs(run.settings)
    return ingest.land(run.settings, request_for(run.settings, run.ds, run.config)).__dict__


def _validate(run: Run, landed: dict[str, Any]) -> dict[str, Any]:
    from ml import ingest

    return ingest.validate(run.settings, run.ds)


def _publish(run: Run, checked: dict[str, Any], _: list[dict[str, Any]]) -> dict[str, Any]:
    from ml import ingest

    return ingest.publish(run.settings, run.ds)


INGEST = Pipeline(
    name="ingest",
    dag_id="ecom_ingest",
    doc=__doc__ or "",
    config=IngestConfig,
    # a failed gate is not transient: rerun after fixing the source
    steps=(Step("land", _land), Step("validate", _validate, retries=0)),
    publish=_publish,
    outputs=tuple(f"curated/{name}" for name in contract.TABLES),
    schedule="@daily",
    default_ds=_default_ds,
    tags=("ingest", "validation"),
)
