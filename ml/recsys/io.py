"""Everything the recommender reads and writes: curated events, customers and the product catalogue, each
shard's staged recommendations, and the publish of ``recommendations``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.settings import Settings

TABLE = "recommendations"


def load_events(settings: Settings, ds: dt.date, history_days: int, event_types: tuple[str, ...]) -> pd.DataFrame:
    """Curated events of ``event_types`` in the ``history_days`` up to ds."""
    start = ds - dt.timedelta(days=history_days - 1)
    events = lake.read_range(settings.lake, "curated", "events", start, ds)
    events = events[events["event_type"].isin(event_types)]
    if events.empty:
        raise EcomError(f"events: no {list(event_types)} rows in curated partitions {start}..{ds}; run ecom_ingest first")
    return events


@dataclass(frozen=True)
class ScoringInputs:
    events: pd.DataFrame  # every event type: recent popularity is shop-wide
    customers: pd.DataFrame
    catalogue: pd.DataFrame


def load_scoring_inputs(settings: Settings, ds: dt.date, history_days: int) -> ScoringInputs:
    """The events of the ``history_days`` up to ds and the newest customers and products snapshots."""
    start = ds - dt.timedelta(days=history_days - 1)
    return ScoringInputs(
        events=lake.read_range(settings.lake, "curated", "events", start, ds),
        customers=lake.read_latest(settings.lake, "curated", "customers", ds),
        catalogue=lake.read_latest(settings.lake, "curated", "products", ds),
    )


def stage_recommendations(settings: Settings, ds: dt.date, shard: int, frame: pd.DataFrame) -> int:
    return staging.stage(settings, TABLE, ds, shard, frame)


def publish(settings: Settings, ds: dt.date, shards: int, model_version: str) -> int:
    """Gather the staged shards of ds (all made by ``model_version``) and replace the ds; returns rows written."""
    return staging.publish(settings, TABLE, ds, shards, version=model_version)
