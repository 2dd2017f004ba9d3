"""Bring your own data: a folder of ``<table>.csv`` files named after contract tables, copied byte for byte
into the drop so that the gate sees exactly what was delivered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ml import contract
from ml.errors import ConfigError, SourceError
from ml.dates import as_date
from ml.settings import Settings
from ml.sources import SourceBatch, SourceRequest


def land(settings: Settings, request: SourceRequest) -> SourceBatch:
    if not request.path:
        raise ConfigError("source 'files' needs a folder: pass --path DIR (a <table>.csv per contract table)")
    folder = Path(request.path)
    if not folder.is_dir():
        raise SourceError(f"source 'files': {folder} is not a folder")
    found = {p.stem: p for p in sorted(folder.glob("*.csv")) if p.stem in contract.TABLES}
    if not found:
        raise SourceError(f"source 'files': {folder} holds no CSV named after a contract table {sorted(contract.TABLES)}")
    start = as_date(request.ds) - dt.timedelta(days=request.backfill_days or 0)
    return SourceBatch(window_start=start, files=found)
