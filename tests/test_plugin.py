"""The reports plugin loads in Airflow and serves the day's validation report, never files outside the lake."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

from fastapi.testclient import TestClient

from ml import ingest
from ml.sources import SourceRequest

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "ecom_reports.py"


def _load_plugin_module():
    spec = importlib.util.spec_from_file_location("ecom_reports", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_airflow_finds_the_plugin():
    from airflow import plugins_manager

    names = [p.name for p in plugins_manager._get_plugins()[0]]
    assert "ecom_reports" in names


def test_reports_are_served_and_listed(settings):
    ingest.run_day(settings, SourceRequest("synthetic", dt.date(2024, 1, 15), scale="tiny", backfill_days=1))
    client = TestClient(_load_plugin_module().create_app())
    index = client.get("/")
    assert index.status_code == 200 and "validation ds=2024-01-15" in index.text
    page = client.get("/validation/ds=2024-01-15/index.html")
    assert page.status_code == 200 and "PASSED" in page.text
    assert client.get("/validation/ds=2024-01-15/data_docs/index.html").status_code == 200
    assert client.get("/validation/..%2F..%2F..%2Fserving.db").status_code == 404
    assert client.get("/elsewhere/x").status_code == 404
