"""ecom_ingest run end to end with dag.test(): reruns are idempotent, a bad drop stops at validate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import committed_digests
from ml import contract, delivery, ingest, lake, lake_storage, serving
from ml.sources import SourceRequest

REPO = Path(__file__).resolve().parent.parent
DS = dt.datetime(2024, 2, 20, tzinfo=dt.UTC)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ingest_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).get_dag("ecom_ingest")


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_twice_for_the_same_ds_gives_identical_outputs(ingest_dag, settings):
    conf = {"scale": "tiny", "backfill_days": 6}
    first = ingest_dag.test(logical_date=DS, run_conf=conf)
    assert str(first.state) == "success", _states(first)
    files = committed_digests(settings.lake, "curated")
    rows = serving.read_ds(settings.serving_url, "validation_runs", DS.date())
    second = ingest_dag.test(logical_date=DS, run_conf=conf)
    assert str(second.state) == "success", _states(second)
    assert committed_digests(settings.lake, "curated") == files and len(files) == 6 * 7 + 4  # 6 fact tables x 7 days + 4 dimension snapshots
    again = serving.read_ds(settings.serving_url, "validation_runs", DS.date())
    assert len(again) == len(rows) == len(contract.TABLES)
    assert lake.read_partition_file(settings.lake, "reports", "validation", DS.date(), "index.html") is not None


def test_bad_drop_fails_validate_and_never_publishes(ingest_dag, settings, tmp_path):
    ingest.land(settings, SourceRequest("synthetic", DS.date(), scale="tiny", backfill_days=0))
    export = tmp_path / "export"
    export.mkdir()
    with lake.local_folder(settings.lake, "raw", ingest.DROP, DS.date()) as drop:
        for name in ("products", "orders", "order_items", "warehouses", "customers"):
            (export / f"{name}.csv").write_bytes((drop / f"{name}.csv").read_bytes())
    lines = (export / "order_items.csv").read_text().splitlines()
    lines[1] = lines[1].replace(lines[1].split(",")[1], "P99999", 1)
    (export / "order_items.csv").write_text("\n".join(lines) + "\n")
    delivery.write_manifest(export)  # the sender's manifest describes the bad export: the gate must read it
    run = ingest_dag.test(logical_date=DS, run_conf={"source": "files", "path": str(export)})
    states = _states(run)
    assert str(run.state) == "failed"
    assert states["land"] == "success" and states["validate"] == "failed" and states["publish"] == "upstream_failed"
    assert not lake_storage.storage(settings.lake).exists("curated")
    assert lake.read_partition_file(settings.lake, "quarantine", ingest.DROP, DS.date(), "report/index.html") is not None
