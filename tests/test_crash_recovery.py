"""Kill a publish at every step boundary (a fault point in the commit code, not timing luck) and check that readers
see the old day or the new one, never a mix; that the next run finishes or discards what the crash left; and that
the serving store ends equal to the lake.

Each publish runs in a subprocess that ``ECOM_CRASH_AT`` stops with ``os._exit`` (what ``kill -9`` does: no
cleanup). A traced run lists the points first, so a new step in the publish code is covered without editing this
test: the first and last passage of every kind of point is tried (staging a partition, writing the commit record,
applying, each rename into place, each serving-store write, deleting the record)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_home, export_settings, lake_leftovers, make_settings
from forked import run_python
from ml import ingest, lake, lake_storage, serving
from ml.pipeline import Pipeline, table_ref
from ml.sources import SourceRequest

DS = dt.date(2024, 3, 30)


def _points(trace: Path) -> list[str]:
    """The first and the last passage of each kind of fault point a traced run went through, in order."""
    passed = trace.read_text().split()
    kinds: dict[str, list[str]] = {}
    for point in passed:
        kinds.setdefault(point.split("#")[0], []).append(point)
    chosen = {p for seen in kinds.values() for p in (seen[0], seen[-1])}
    return [p for p in passed if p in chosen]


def _subprocess(code: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return run_python(code, ECOM_HOME=str(home), **env)


def _digest(frame: pd.DataFrame) -> str:
    ordered = frame.sort_values(list(frame.columns), ignore_index=True) if len(frame) else frame
    return hashlib.sha256(pd.util.hash_pandas_object(ordered.astype(str), index=False).to_numpy().tobytes()).hexdigest()


def _seen(settings, tables: list[tuple[str, str]], ds: str) -> tuple[str | None, ...]:
    """What a reader sees of each table's ds (None: not published)."""
    out = []
    for zone, table in tables:
        days = lake.list_partitions(settings.lake, zone, table)
        out.append(_digest(lake.read_partition(settings.lake, zone, table, ds)) if lake.as_date(ds) in days else None)
    return tuple(out)


def _served_equals_lake(settings, table: str, zone: str, ds: str) -> bool:
    served = serving.read_ds(settings.serving_url, table, ds)
    stored = lake.read_partition(settings.lake, zone, table, ds)
    return len(served) == len(stored)


def _crash_each_point(settings, snapshot: Path, code: str, tables: list[tuple[str, str]], ds: dt.date, served: list[tuple[str, str]]) -> int:
    """Restore ``snapshot``, run ``code`` to a crash at each point; check readers, recovery and the rerun."""
    home = settings.home
    old = _seen(settings, tables, ds)
    trace = home.parent / "trace.txt"
    done = _subprocess(code, home, ECOM_FAULT_TRACE=str(trace))
    assert done.returncode == 0, done.stderr[-3000:]
    new = _seen(settings, tables, ds)
    assert new != old, "the run to crash must change the day, or old and new cannot be told apart"
    points = _points(trace)
    for number, point in enumerate(points):
        copy_home(snapshot, home)
        crashed = _subprocess(code, home, ECOM_CRASH_AT=point)
        assert crashed.returncode == lake.CRASH_EXIT, (point, crashed.stderr[-3000:])
        assert _seen(settings, tables, ds) in (old, new), f"a reader saw a partial day after a crash at {point}"
        lake.recover(settings.lake, settings.serving_url)  # what the next task does first
        assert lake_leftovers(settings.lake) == [], (point, lake_leftovers(settings.lake))
        for zone, table in served:
            if lake.as_date(ds) in lake.list_partitions(settings.lake, zone, table):
                assert _served_equals_lake(settings, table, zone, ds), f"serving store differs from the lake after {point}"
        if number in (0, len(points) - 1):  # the retried task, before and after the commit point
            rerun = _subprocess(code, home)
            assert rerun.returncode == 0, (point, rerun.stderr[-3000:])
            assert _seen(settings, tables, ds) == new and lake_leftovers(settings.lake) == []
    return len(points)


@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory) -> Path:
    """90 days of the tiny shop through DS - 1 in a lake, and the drop of DS landed and validated (covering DS - 1
    and DS), so publishing it changes DS - 1's partitions and adds DS's."""
    home = tmp_path_factory.mktemp("shop") / "ecom"
    s = make_settings(home)
    ingest.run_day(s, SourceRequest("synthetic", dt.date(2024, 3, 29), scale="tiny", backfill_days=88))
    ingest.land(s, SourceRequest("synthetic", DS, scale="tiny", backfill_days=1))
    ingest.validate(s, DS)
    return home


def _settings_at(home: Path, monkeypatch):
    s = make_settings(home)
    export_settings(s, monkeypatch)
    return s


def test_ingest_publish_crashed_at_every_boundary_shows_a_whole_day(tiny_shop, tmp_path, monkeypatch):
    home = tmp_path / "ecom"
    copy_home(tiny_shop, home)
    snapshot = tmp_path / "snapshot"
    copy_home(home, snapshot)
    settings = _settings_at(home, monkeypatch)
    tables = [("curated", t) for t in ("events", "orders", "order_items", "inventory", "customers", "products")]
    code = f"import datetime; from ml import ingest; from ml.settings import get_settings; ingest.publish(get_settings(), {DS!r})"
    tried = _crash_each_point(settings, snapshot, code, tables, DS, served=[("reports", ingest.VALIDATION_RUNS)])
    assert tried >= 8  # first and last staged partition and rename; record; apply; serving write; record deleted


PUBLISH_IN_SUBPROCESS = """
import json, sys
from ml.dates import as_date
from ml.pipeline import Run
from ml.settings import get_settings
from ml.{module} import {name} as pipeline
state = json.loads(open(sys.argv[1] if len(sys.argv) > 1 else {state!r}).read())
run = Run(get_settings(), as_date(state["ds"]), pipeline.config.from_params(state["config"]))
pipeline.publish(run, state["previous"], state["results"])
"""


def _stage_without_publishing(pipeline: Pipeline, settings, config: dict) -> dict:
    """Every step and fan-out item of a run, as Pipeline.run does, but not its publish: what a DAG run holds when
    its publish task starts."""
    from ml.dates import as_date
    from ml.orchestration import xcom_safe
    from ml.pipeline import ITEMS, Run

    run = Run(settings, as_date(DS), pipeline.config.from_params(config))
    previous = {"ds": DS.isoformat(), "config": run.config.as_dict()}
    for step in pipeline.steps:
        previous = xcom_safe(step.fn(run, previous))
    results = [xcom_safe(pipeline.fan_out.fn(run, item, previous)) for item in previous[ITEMS]] if pipeline.fan_out else []
    return {"ds": DS.isoformat(), "config": run.config.as_dict(), "previous": previous, "results": results}


CASES = {
    # pipeline module, declaration, the published day (None: none), then the run whose publish is killed (it must
    # change the day)
    "recommendations": ("recsys.pipeline", "RECOMMENDATIONS", {"model": "popularity", "k": 5, "shards": 2}, {"model": "popularity", "k": 3, "shards": 2}),
    # the tiny shop's forecast and plan do not change with their Params: the day is not published before
    "demand_forecast": ("forecast.pipeline", "DEMAND_FORECAST", None, {"model": "seasonal_naive", "horizon": 7, "origins": 2, "origin_step": 7, "shards": 2}),
    "inventory_plan": ("inventory.pipeline", "INVENTORY_PLAN", None, {"time_limit_s": 30}),
    # one learner, not auto's cross-validated choice of three: the publish is under test, not the learner
    "interventions": (
        "intervention.pipeline",
        "INTERVENTION",
        {"holdout_campaigns": 1, "budget": 0, "learner": "t"},
        {"holdout_campaigns": 1, "budget": 500, "learner": "t"},
    ),
    "delivery_routes": (
        "routing.pipeline",
        "DELIVERY_ROUTING",
        {"time_limit_s": 1, "fleet_size": 1, "vehicle_capacity": 1},
        {"time_limit_s": 1, "fleet_size": 2, "vehicle_capacity": 5},
    ),
}


NEEDS = {"inventory_plan": ("demand_forecast",), "interventions": ("recommendations",)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pipeline_publish_crashed_at_every_boundary_shows_a_whole_day(case, tiny_shop, tmp_path, monkeypatch):
    """The recommendations case is the one found on the live stack: killed between the lake write and the serving
    store, the lake had the new set and the serving store the old one."""
    import importlib

    from ml.cli import run_pipeline

    module, name, published, crashing = CASES[case]
    pipeline: Pipeline = getattr(importlib.import_module(f"ml.{module}"), name)
    home = tmp_path / "ecom"
    copy_home(tiny_shop, home)
    settings = _settings_at(home, monkeypatch)
    ingest.publish(settings, DS)
    for upstream in NEEDS.get(case, ()):
        up_module, up_name, up_published, up_crashing = CASES[upstream]
        run_pipeline(getattr(importlib.import_module(f"ml.{up_module}"), up_name), DS, up_published or up_crashing)
    if published is not None:
        run_pipeline(pipeline, DS, published)
    state = tmp_path / "state.json"
    state.write_text(json.dumps(_stage_without_publishing(pipeline, settings, crashing)))
    snapshot = tmp_path / "snapshot"
    copy_home(home, snapshot)
    tables = [table_ref(t) for t in pipeline.outputs]
    code = PUBLISH_IN_SUBPROCESS.format(module=module, name=name, state=str(state))
    tried = _crash_each_point(settings, snapshot, code, tables, DS, served=tables)
    assert tried >= 6


def test_a_validation_killed_mid_way_leaves_nothing_after_the_next_run(tiny_shop, tmp_path, monkeypatch):
    """The gate's report and its Great Expectations project are built inside the report's staging folder, so a
    killed validation leaves one hidden folder in the lake (no temporary folder elsewhere), which the next run
    removes."""
    import tempfile

    home = tmp_path / "ecom"
    copy_home(tiny_shop, home)
    settings = _settings_at(home, monkeypatch)
    temp_before = set(os.listdir(tempfile.gettempdir()))
    code = f"import datetime; from ml import ingest; from ml.settings import get_settings; ingest.validate(get_settings(), {DS!r})"
    crashed = _subprocess(code, home, ECOM_CRASH_AT="record#1")
    assert crashed.returncode == lake.CRASH_EXIT, crashed.stderr[-3000:]
    store = lake_storage.storage(settings.lake)
    staged = [e.name for e in store.entries("reports/validation") if e.name.startswith(".")]
    assert len(staged) == 1 and store.exists(f"reports/validation/{staged[0]}/report.json")
    assert {n for n in set(os.listdir(tempfile.gettempdir())) - temp_before if n.startswith("gx")} == set()
    assert ingest.validate(settings, DS)["checks"] > 100
    assert lake_leftovers(settings.lake) == []
