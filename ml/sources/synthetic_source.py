"""The synthetic shop as a source: the drop for ds (and ``backfill_days`` before it).

The shop follows a calendar kept in the lake (``raw/synthetic/shop.json``): the day it opened. ``ecom demo``
opens it so that its history ends yesterday by the clock, so the daily schedule continues from that history;
without a calendar the shop opens on its configuration's fixed start (2024-01-01), as the tests expect."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

from ml import lake
from ml.lake import as_date
from ml.settings import Settings
from ml.sources import SourceBatch, SourceRequest
from ml.sources import synthetic as shop

log = logging.getLogger(__name__)

ROAD_NETWORK = Path("osm") / "derived" / "monaco.drive.osm.bz2"
"""Addresses and depots sit on the nodes of this network (relative to ECOM_SHARED_DATA) when it is there."""


CALENDAR = "raw/synthetic/shop.json"
"""The shop's calendar, a file of the lake."""


def shop_config(settings: Settings, scale: str, seed: int | None = None) -> shop.ShopConfig:
    """The scale's configuration with the settings' abuse rate, opened on the day the lake's calendar says (if it
    has one)."""
    cfg = dataclasses.replace(shop.scale_config(scale, seed), abuse_rate=settings.abuse_rate)
    calendar = lake.read_file(settings.lake, CALENDAR)
    if calendar is not None:
        cfg = dataclasses.replace(cfg, start=as_date(json.loads(calendar)["opened"]))
    return cfg


def open_shop(settings: Settings, scale: str, last_history_day: dt.date) -> shop.ShopConfig:
    """Give the lake a calendar on which the scale's history (``n_days``) ends on ``last_history_day``; a lake
    that already has one keeps it (its history must not move under it)."""
    if lake.read_file(settings.lake, CALENDAR) is None:
        opened = last_history_day - dt.timedelta(days=shop.scale_config(scale).n_days - 1)
        lake.write_file(settings.lake, CALENDAR, json.dumps({"opened": opened.isoformat(), "scale": scale}, indent=2))
        log.info("the synthetic shop opens on %s: its %s history ends on %s", opened, scale, last_history_day)
    return shop_config(settings, scale)


def land(settings: Settings, request: SourceRequest) -> SourceBatch:
    cfg = shop_config(settings, request.scale, request.seed)
    end = request.ds
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
