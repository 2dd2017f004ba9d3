"""Bring your own data: a folder of ``<table>.csv`` files named after contract tables and the ``manifest.json``
that lists them (``ecom manifest FOLDER`` writes it). Every file is copied byte for byte into the drop, named or
misnamed, so that the gate sees exactly what was delivered and checks it against the manifest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ml import delivery
from ml.errors import ConfigError, SourceError
from ml.settings import Settings
from ml.sources import SourceBatch, SourceRequest


def land(settings: Settings, request: SourceRequest) -> SourceBatch:
    if not request.path:
        raise ConfigError("source 'files' needs a folder: pass --path DIR (a <table>.csv per contract table and its manifest.json)")
    folder = Path(request.path)
    if not folder.is_dir():
        raise SourceError(f"source 'files': {folder} is not a folder")
    manifest = delivery.read_manifest(folder)
    found = {p.name: p for p in delivery.delivered_files(folder)}
    start = request.ds - dt.timedelta(days=request.backfill_days or 0)
    return SourceBatch(window_start=start, files=found, listed=manifest["files"])
