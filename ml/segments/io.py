"""Everything the segments pipeline reads and writes: the curated tables of the lookback, yesterday's centroids
(features zone), earlier days' profiles for the report, and the publish of ``customer_segments``,
``segment_profiles``, the report and today's centroids in one commit."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import lake, staging
from ml.errors import EcomError
from ml.segments import report
from ml.settings import Settings

SEGMENTS, PROFILES, CENTROIDS = "customer_segments", "segment_profiles", "segment_centroids"
REPORT_FILE = "report.html"


def load_tables(settings: Settings, ds: dt.date, lookback_days: int) -> dict[str, pd.DataFrame]:
    """The curated tables whose rows the features of the ``lookback_days`` through ds read (a missing day is
    refused, never read as a quiet day)."""
    start = ds - dt.timedelta(days=lookback_days)
    events = lake.read_range(settings.lake, "curated", "events", start, ds)
    if events.empty:
        raise EcomError(f"events: no curated rows in {start}..{ds} under {settings.lake}; run ecom_ingest first")
    return {
        "customers": lake.read_latest(settings.lake, "curated", "customers", ds),
        "events": events,
        "orders": lake.read_range(settings.lake, "curated", "orders", start, ds),
        "items": lake.read_range(settings.lake, "curated", "order_items", start, ds),
        "products": lake.read_latest(settings.lake, "curated", "products", ds),
    }


def previous_centroids(settings: Settings, ds: dt.date) -> tuple[dt.date | None, pd.DataFrame | None]:
    """The newest centroids published before ds (a rerun of ds matches the same day as its first run did)."""
    days = [d for d in lake.list_partitions(settings.lake, "features", CENTROIDS) if d < ds]
    if not days:
        return None, None
    return days[-1], lake.read_partition(settings.lake, "features", CENTROIDS, days[-1]).set_index("segment")


def stage(settings: Settings, ds: dt.date, segments: pd.DataFrame, profiles: pd.DataFrame, centroids: pd.DataFrame) -> None:
    for table, frame in ((SEGMENTS, segments), (PROFILES, profiles), (CENTROIDS, centroids)):
        staging.stage(settings, table, ds, 0, frame)


def publish(settings: Settings, ds: dt.date, history_days: int) -> dict:
    """Replace ds's segments, profiles, report and centroids in one commit; returns rows written."""
    segments, profiles, centroids = (staging.gather(settings, table, ds, 1) for table in (SEGMENTS, PROFILES, CENTROIDS))
    earlier = [d for d in lake.list_partitions(settings.lake, "outputs", PROFILES) if ds - dt.timedelta(days=history_days) <= d < ds]
    history = pd.concat([profiles, *(lake.read_partition(settings.lake, "outputs", PROFILES, d) for d in earlier)], ignore_index=True)
    html = report.html(ds, segments, profiles, history)
    with staging.day_commit(settings, f"publish customer segments ds={ds}") as day:
        rows = staging.write(settings, SEGMENTS, ds, segments, files={REPORT_FILE: html}, change=day)
        segment_count = staging.write(settings, PROFILES, ds, profiles, change=day)
        day.write("features", CENTROIDS, ds, centroids)
        for table in (SEGMENTS, PROFILES, CENTROIDS):
            staging.discard_older(day, table, ds)
    return {"rows": rows, "segments": segment_count, "report": str(lake.text_path(settings.lake, "outputs", SEGMENTS, ds, REPORT_FILE))}
