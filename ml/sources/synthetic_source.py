"""The synthetic shop as a source: the drop for ds (and ``backfill_days`` before it)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from ml.lake import as_date
from ml.settings import Settings
from ml.sources import SourceBatch, SourceRequest
from ml.sources import synthetic as shop

log = logging.getLogger(__name__)

ROAD_NETWORK = Path("osm") / "derived" / "monaco.drive.osm.bz2"
"""Addresses and depots sit on the nodes of this network (relative to ECOM_SHARED_DATA) when it is there."""


def land(settings: Settings, request: SourceRequest) -> SourceBatch:
    cfg = shop.scale_config(request.scale, request.seed)
    end = as_date(request.ds)
    start = max(cfg.start, end - dt.timedelta(days=request.backfill_days or 0))
    road = Path(request.path) if request.path else settings.shared_data_dir / ROAD_NETWORK
    nodes = shop.road_node_coordinates(road) if road.exists() else None
    if nodes is None:
        log.warning("road network %s not found: addresses are placed uniformly in a bounding box instead", road)
    world = shop.build_world(cfg, nodes)
    batch = shop.simulate(world, start, end, progress=_progress_logger())
    return SourceBatch(window_start=start, tables=batch.tables, ground_truth=batch.ground_truth)


def _progress_logger():
    def report(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            log.info("simulated %d/%d days", done, total)

    return report
