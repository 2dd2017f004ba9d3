"""Everything the intervention pipeline reads and writes: the curated tables its features come from, yesterday's
top recommendations (the recommender's output table, never its code), the training sets kept in the features
zone for the gate, earlier days' interventions (fatigue), and the publish of ``interventions``."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.intervention.data import Tables
from ml.settings import Settings

TABLE = "interventions"
SEGMENTS = "customer_segments"
SUMMARY_FILE = "plan_summary.json"  # name kept: existing lakes and readers know it
CAMPAIGN_FEATURES, PROPENSITY_FEATURES = "intervention_campaigns", "intervention_propensity"


def load_tables(settings: Settings, ds: dt.date, first_as_of: pd.Timestamp, lookback_days: int, campaign_history_days: int) -> Tables:
    """The curated tables through ds that features at ``first_as_of`` and later need, plus the campaign history;
    the top recommendation of the day before each moment when it was published."""
    campaigns = lake.read_range(settings.lake, "curated", "coupon_campaigns", ds - dt.timedelta(days=campaign_history_days), ds)
    moments = [first_as_of] + ([campaigns["sent_ts"].min().floor("D")] if len(campaigns) else [])
    start = min(moments).date() - dt.timedelta(days=lookback_days)
    events = lake.read_range(settings.lake, "curated", "events", start, ds)
    if events.empty:
        raise EcomError(f"events: no curated partitions in {start}..{ds} under {settings.lake}; run ecom_ingest first")
    recommended = set(lake.list_partitions(settings.lake, "outputs", "recommendations"))

    def top_recommendations(as_of: pd.Timestamp) -> pd.DataFrame | None:
        day = as_of.date() - dt.timedelta(days=1)
        if day not in recommended:
            return None
        return lake.read_partition(settings.lake, "outputs", "recommendations", day, columns=["customer_id", "score"], filters=[("rank", "==", 1)])

    return Tables(
        customers=lake.read_latest(settings.lake, "curated", "customers", ds),
        events=events,
        orders=lake.read_range(settings.lake, "curated", "orders", start, ds),
        items=lake.read_range(settings.lake, "curated", "order_items", start, ds),
        products=lake.read_latest(settings.lake, "curated", "products", ds),
        campaigns=campaigns,
        top_recommendations=top_recommendations,
    )


def write_training_sets(settings: Settings, ds: dt.date, propensity_rows: pd.DataFrame, campaign_rows: pd.DataFrame) -> None:
    """Keep ds's training sets, so the gate refits the champion's recipe on exactly these rows."""
    lake.write_partition(settings.lake, "features", PROPENSITY_FEATURES, ds, propensity_rows)
    lake.write_partition(settings.lake, "features", CAMPAIGN_FEATURES, ds, campaign_rows)


def read_campaign_rows(settings: Settings, ds: dt.date) -> pd.DataFrame:
    return lake.read_partition(settings.lake, "features", CAMPAIGN_FEATURES, ds)


def targeted_since(settings: Settings, ds: dt.date, days: int) -> set[str]:
    """Customers given an action by the interventions of the ``days - 1`` days before ds."""
    contacted: set[str] = set()
    for day in lake.list_partitions(settings.lake, "outputs", TABLE):
        if ds - dt.timedelta(days=days) < day < ds:
            contacted |= set(lake.read_partition(settings.lake, "outputs", TABLE, day)["customer_id"])
    return contacted


def load_segments(settings: Settings, ds: dt.date) -> pd.DataFrame | None:
    """ds's customer_segments (customer_id, segment, segment_name), the segments pipeline's output table; None
    when it has not published ds."""
    if ds not in lake.list_partitions(settings.lake, "outputs", SEGMENTS):
        return None
    return lake.read_partition(settings.lake, "outputs", SEGMENTS, ds, columns=["customer_id", "segment", "segment_name"])


def stage(settings: Settings, ds: dt.date, frame: pd.DataFrame) -> int:
    """Keep ds's planned interventions for the publish step; returns rows staged."""
    return staging.stage(settings, TABLE, ds, 0, frame)


def publish(settings: Settings, ds: dt.date, summary: dict) -> int:
    """Replace ds's interventions with the staged plan the summary describes (its champion version and row count),
    the summary beside the rows; returns rows written."""
    files = {SUMMARY_FILE: json.dumps(summary, indent=2)}
    return staging.publish(settings, TABLE, ds, 1, summary["model_version"], files=files, rows=summary["rows"])
