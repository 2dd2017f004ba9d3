"""The daily step: every customer active in the lookback gets an RFM code and a behavioural segment with a plain
name; the segments' profiles and centroids are staged for the publish."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from ml import contract
from ml.segments import data, io, model
from ml.segments.pipeline import SegmentsConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

SEGMENT_COLUMNS = tuple(contract.table(io.SEGMENTS).column_names)
PROFILE_COLUMNS = tuple(contract.table(io.PROFILES).column_names)


def segment_tables(
    tables: dict[str, pd.DataFrame], ds: dt.date, config: SegmentsConfig, previous: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, model.Clustering]:
    """ds's customer_segments and segment_profiles rows, the centroids to match tomorrow against, and the clustering."""
    as_of = pd.Timestamp(ds + dt.timedelta(days=1), tz="UTC")
    features = data.behaviour(tables["customers"], tables["events"], tables["orders"], tables["items"], tables["products"], as_of, config.lookback_days)
    clustering = model.cluster(features, config.clustering(), previous)
    segment_of = clustering.segment
    stats = data.segment_stats(features, segment_of)
    names = model.names(stats)
    profiles = stats.assign(segment_name=pd.Series(names), top_categories=data.top_categories(tables["events"], tables["products"], segment_of))
    profiles = profiles.assign(top_categories=profiles["top_categories"].fillna("")).rename_axis("segment").reset_index()
    rfm = data.rfm(features)
    segments = rfm.assign(segment=segment_of.reindex(rfm["customer_id"]).to_numpy())
    segments["segment_name"] = segments["segment"].map(names)
    iso = ds.isoformat()
    centroids = clustering.centroids.reset_index().assign(segment_name=lambda c: c["segment"].map(names))
    return segments.assign(ds=iso)[list(SEGMENT_COLUMNS)], profiles.assign(ds=iso)[list(PROFILE_COLUMNS)], centroids, clustering


def segment_day(settings: Settings, ds: dt.date, config: SegmentsConfig) -> dict:
    """Segment ds's customers and stage the tables for the publish."""
    tables = io.load_tables(settings, ds, config.lookback_days)
    matched_day, previous = io.previous_centroids(settings, ds)
    segments, profiles, centroids, clustering = segment_tables(tables, ds, config, previous)
    io.stage(settings, ds, segments, profiles, centroids)
    for row in profiles.itertuples():
        log.info(
            "ds=%s segment %d %r: %d customers, %.1f%% of revenue, churn risk %.2f",
            ds,
            row.segment,
            row.segment_name,
            row.customers,
            100 * row.revenue_share,
            row.churn_risk,
        )
    return {
        "customers": len(segments),
        "k": clustering.k,
        "names": {str(row.segment): row.segment_name for row in profiles.itertuples()},
        "stability": {str(k): round(s, 4) for k, s in clustering.stability.items()},
        "bic": {str(k): round(b, 1) for k, b in clustering.bic.items()},
        "matched_to": None if matched_day is None else matched_day.isoformat(),
    }
