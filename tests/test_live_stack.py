"""The live production stack end to end: `docker/stack.sh up` on the local PostgreSQL and Redis (Airflow's
scheduler, DAG processor, triggerer and api-server, Celery workers on queues default and gpu, the MLflow server),
the tiny shop's history ending yesterday, then the nine DAGs unpaused through the REST API as a user would in the UI:
the daily schedule lands today's drop and the Asset events run the five model DAGs on the same day; then a closed-loop
simulation (ecom_simulation) runs its policies as mapped tasks on the workers.

Runs when ECOM_TEST_POSTGRES_URL and ECOM_TEST_REDIS_URL are set (.ci/run sets both). The stack is stopped and its
databases dropped at the end, pass or fail."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import free_port

REPO = Path(__file__).resolve().parent.parent
DAGS = (
    "ecom_ingest",
    "ecom_recommendations",
    "ecom_demand_forecast",
    "ecom_inventory_plan",
    "ecom_intervention",
    "ecom_delivery_routing",
    "ecom_associations",
    "ecom_segments",
    "ecom_risk",
)
OUTPUTS = {
    "recommendations": ("customer_id", "rank"),
    "demand_forecasts": ("product_id", "warehouse_id", "target_date"),
    "purchase_orders": ("warehouse_id", "product_id", "order_date"),
    "interventions": ("customer_id",),
    "delivery_routes": ("depot_id", "vehicle_id", "stop_seq"),
    "product_associations": ("product_id", "associated_product_id"),
    "customer_segments": ("customer_id",),
    "segment_profiles": ("segment",),
    "order_risk": ("order_id",),
}
# Params this deployment gives its scheduled and Asset-triggered runs (Airflow Variables <dag_id>_params), sized for
# the tiny shop's 90 days: the blend of EASE and recent popularity instead of SASRec, a short forecast backtest, one
# held-out campaign, and one uplift learner instead of auto's cross-validated choice among three (the scheduler is
# under test here, not the learner)
DEPLOYMENT_PARAMS = {
    "ecom_recommendations": {"model": "blend"},
    "ecom_demand_forecast": {"horizon": 7, "origins": 2, "origin_step": 7, "lgbm_estimators": 100},
    "ecom_intervention": {"holdout_campaigns": 1, "learner": "t"},
    "ecom_segments": {"k_max": 5, "stability_fits": 2},
    # the tiny shop lands with 20% abusive orders (ECOM_ABUSE_RATE below); its abuse comes in bursts, so a 20-day
    # holdout held no label on some days of the calendar (2026-12-02): 40 days hold some on every day tried
    "ecom_risk": {"label_maturity_days": 14, "holdout_days": 40, "min_labels": 5},
}
ROUND_TIMEOUT_S = 900  # make test's other pytest-xdist worker shares the 2 cores with the stack's processes

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.runs_first]


class Stack:
    """A started stack and a REST client for it (the same API the UI uses)."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.api = f"http://127.0.0.1:{env['ECOM_STACK_API_PORT']}"
        self.mlflow = f"http://127.0.0.1:{env['ECOM_STACK_MLFLOW_PORT']}"
        self._token: str | None = None

    def script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(["bash", str(REPO / "docker" / "stack.sh"), *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600)
        if check:
            assert out.returncode == 0, f"stack.sh {' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
        return out

    def stack_env(self) -> dict[str, str]:
        lines = (self.home / "stack.env").read_text().splitlines()
        return os.environ | dict(line.split("=", 1) for line in lines if "=" in line)

    def call(self, method: str, path: str, body: dict | None = None, base: str | None = None):
        headers = {"Content-Type": "application/json"}
        if base is None:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request((base or self.api) + path, method=method, headers=headers, data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def token(self) -> str:
        if self._token is None:
            password = json.loads((self.home / "airflow" / "passwords.json").read_text())["admin"]
            request = urllib.request.Request(
                f"{self.api}/auth/token",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps({"username": "admin", "password": password}).encode(),
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, each with the ds its resolve task resolved (None before resolve has run or when it failed)."""
        out = []
        for run in self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]:
            try:
                resolved = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/resolve/xcomEntries/return_value")
                run["ds"] = resolved["value"]["ds"]
            except urllib.error.HTTPError:
                run["ds"] = None
            out.append(run)
        return out

    def wait(self, wanted: dict[str, tuple[str, int]], what: str) -> dict[str, list[dict]]:
        """Wait until each DAG has at least n successful runs on ds (``wanted``: dag -> (ds, n)); fail fast on a
        failed run on such a ds, naming its failed tasks."""
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while True:
            runs = {dag: self.runs(dag) for dag in wanted}
            for dag, (ds, _) in wanted.items():
                for run in runs[dag]:
                    if run["ds"] == ds and run["state"] == "failed":
                        pytest.fail(f"{what}: {dag} run {run['dag_run_id']} failed on ds={ds}: {self.failed_tasks(dag, run)}")
            done = {dag: sum(r["ds"] == ds and r["state"] == "success" for r in runs[dag]) >= n for dag, (ds, n) in wanted.items()}
            if all(done.values()):
                return runs
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what}: not done after {ROUND_TIMEOUT_S}s: {done}; runs: "
                    f"{ {d: [(r['run_type'], r['state'], r['ds']) for r in rs] for d, rs in runs.items()} }"
                )
            time.sleep(5)

    def failed_tasks(self, dag_id: str, run: dict) -> dict[str, str]:
        tis = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
        failed = {}
        for ti in tis:
            if ti["state"] == "failed":
                task = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/{ti['task_id']}"
                log = self.call("GET", f"{task}/logs/{ti['try_number']}?full_content=true")
                failed[ti["task_id"]] = json.dumps(log["content"])[-1500:]
        return failed

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str) -> str:
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while (state := self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]) not in ("success", "failed"):
            assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state}"
            time.sleep(3)
        return state

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        log = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1?full_content=true")
        return json.dumps(log["content"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    postgres, redis = os.environ.get("ECOM_TEST_POSTGRES_URL"), os.environ.get("ECOM_TEST_REDIS_URL")
    if not postgres or not redis:
        pytest.skip("ECOM_TEST_POSTGRES_URL / ECOM_TEST_REDIS_URL are not set: the live stack is not requested on this machine")
    home = tmp_path_factory.mktemp("stack")
    env = os.environ | {
        "ECOM_STACK_HOME": str(home),
        "ECOM_STACK_BIN": str(Path(sys.executable).parent),
        "ECOM_STACK_POSTGRES": postgres.rsplit("/", 1)[0],
        "ECOM_STACK_REDIS": redis,
        "ECOM_STACK_DB_PREFIX": f"ecom_e2e_{uuid.uuid4().hex[:8]}",
        "ECOM_STACK_API_PORT": str(free_port()),
        "ECOM_STACK_MLFLOW_PORT": str(free_port()),
        "ECOM_STACK_LOG_PORT": str(free_port()),
        "ECOM_STACK_S3": "moto",  # the lake and MLflow's artifacts in an S3 object store on the loopback
        "ECOM_STACK_S3_PORT": str(free_port()),
        "ECOM_SCALE": "tiny",
        "ECOM_ABUSE_RATE": "0.2",
        "ECOM_STACK_WAIT_S": "240",
        "ECOM_WORKER_CONCURRENCY": "2",
        **{f"AIRFLOW_VAR_{dag.upper()}_PARAMS": json.dumps(params) for dag, params in DEPLOYMENT_PARAMS.items()},
    }
    for name in [k for k in env if k.startswith(("AIRFLOW__", "MLFLOW_", "AWS_", "ECOM_LAKE_"))] + ["AIRFLOW_HOME", "ECOM_HOME", "ECOM_SERVING_URL"]:
        env.pop(name, None)  # the test session's own Airflow / MLflow settings must not leak into the stack
    live = Stack(home, env)
    started = time.monotonic()
    try:
        live.script("up")
        live.startup_s = time.monotonic() - started
        yield live
    finally:
        live.script("down", "--drop", check=False)


def _serving_counts(stack: Stack, ds: str) -> dict[str, tuple[int, int]]:
    """Rows of ds in each output table of the serving store, and how many distinct keys they hold."""
    engine = sa.create_engine(stack.stack_env()["ECOM_SERVING_URL"])
    with engine.connect() as conn:
        out = {}
        for table, key in OUTPUTS.items():
            keys = ", ".join(key)
            rows, distinct = conn.execute(sa.text(f"SELECT count(*), count(DISTINCT ({keys})) FROM {table} WHERE ds = :ds"), {"ds": ds}).one()
            out[table] = (rows, distinct)
    engine.dispose()
    return out


def _object_keys(stack: Stack, prefix: str) -> list[str]:
    import boto3

    env = stack.stack_env()
    s3 = boto3.client(
        "s3",
        endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=env["ECOM_STACK_S3_BUCKET"], Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_the_daily_schedule_continues_from_history_through_every_dag(stack):
    today = dt.date.today()
    yesterday = today - dt.timedelta(days=1)
    seeded = stack.script("history", "--scale", "tiny", "--days", "90")
    assert f"daily run for {yesterday} passed the gate" in " ".join(seeded.stdout.split())

    t0 = time.monotonic()
    for dag in DAGS:
        assert stack.call("PATCH", f"/api/v2/dags/{dag}", {"is_paused": False})["is_paused"] is False
    runs = stack.wait({dag: (today.isoformat(), 1) for dag in DAGS}, "first day")
    first_round_s = time.monotonic() - t0
    assert [r["run_type"] for r in runs["ecom_ingest"] if r["ds"] == today.isoformat()] == ["scheduled"]
    for dag in DAGS[1:]:
        assert {r["run_type"] for r in runs[dag] if r["ds"] == today.isoformat()} == {"asset_triggered"}, dag

    # training ran on the gpu queue, and the gpu worker (not the default one) executed it
    train = [r for r in runs["ecom_recommendations"] if r["ds"] == today.isoformat()][0]
    ti = stack.call("GET", f"/api/v2/dags/ecom_recommendations/dagRuns/{train['dag_run_id']}/taskInstances/train")
    assert ti["queue"] == "gpu" and ti["state"] == "success"
    executed = [
        line
        for line in (stack.home / "logs" / "stack.log").read_text().splitlines()
        if "Executing workload" in line and "dag_id=ecom_recommendations" in line and "task_id=train" in line
    ]
    assert executed and all(line.split("|")[0].split()[1] == "worker-gpu.1" for line in executed), executed
    log = (stack.home / "logs" / "stack.log").read_text()
    assert "gpu worker: torch" in log
    # it trained with no path into the other worker's files: the stack's home was an empty folder in its namespace
    assert f"gpu worker: shares no files with the stack: home {stack.stack_env()['ECOM_GPU_WORKER_HOME']}, {stack.home} hidden" in log
    # the lake is in the object store (Delta logs and raw drops), none of it in a folder of the stack
    lake = _object_keys(stack, "lake/")
    assert any(key.startswith("lake/curated/events/_delta_log/") for key in lake) and any(key.startswith("lake/raw/drop/ds=") for key in lake)
    assert not (stack.home / "lake").exists() and not (Path(stack.stack_env()["ECOM_GPU_WORKER_HOME"]) / "lake").exists()

    # the registry, through the MLflow server's REST API
    for model in ("ecom_recommender", "ecom_demand_forecaster", "ecom_intervention", "ecom_risk"):
        alias = stack.call("GET", f"/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion", base=stack.mlflow)
        assert "champion" in alias["model_version"]["aliases"], model
    # the first recommender trained on the gpu worker is the blend, with the setting it chose on its validation window
    first = stack.call("GET", "/api/2.0/mlflow/model-versions/get?name=ecom_recommender&version=1", base=stack.mlflow)["model_version"]
    trained = stack.call("GET", f"/api/2.0/mlflow/runs/get?run_id={first['run_id']}", base=stack.mlflow)["run"]["data"]
    assert {"key": "recsys.model", "value": "blend"} in trained["tags"], trained["tags"]
    assert {"train.popularity_weight", "train.query_decay", "train.validation_ndcg_at_10"} <= {m["key"] for m in trained["metrics"]}, trained
    # their artifacts went through the MLflow server into the object store, none into a folder of the stack
    assert any(key.endswith("/MLmodel") for key in _object_keys(stack, "mlartifacts/")) and not (stack.home / "mlartifacts").exists()

    counts = _serving_counts(stack, today.isoformat())
    assert all(rows == distinct for rows, distinct in counts.values()), counts  # one set of rows per key
    assert all(
        counts[t][0] > 0
        for t in ("recommendations", "demand_forecasts", "purchase_orders", "delivery_routes", "product_associations", "customer_segments", "order_risk")
    ), counts

    # a second trigger of the same ds through the REST API (as the UI's Trigger button does) replaces the day
    stack.trigger("ecom_ingest", {"ds": today.isoformat(), "scale": "tiny"})
    stack.wait({dag: (today.isoformat(), 2) for dag in DAGS}, "same day again")
    assert _serving_counts(stack, today.isoformat()) == counts

    # a backfill of an older day in ecom_recommendations and ecom_segments runs ecom_intervention on that older day
    stack.trigger("ecom_recommendations", {"ds": yesterday.isoformat()})
    stack.trigger("ecom_segments", {"ds": yesterday.isoformat()})
    backfilled = {dag: (yesterday.isoformat(), 1) for dag in ("ecom_recommendations", "ecom_segments", "ecom_intervention")}
    stack.wait(backfilled, "backfill")

    print(f"\nlive stack: healthy in {stack.startup_s:.0f}s; first day through all {len(DAGS)} DAGs in {first_round_s:.0f}s")


def test_bad_input_fails_in_the_first_task_with_a_clear_message_and_publishes_nothing(stack):
    future = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    cases = [
        ("ecom_recommendations", {"dss": future}, "resolve", "unknown Param(s) ['dss']"),
        ("ecom_intervention", {"ds": "2020-01-01"}, "resolve", "has no partition for that day"),
        ("ecom_ingest", {"ds": future, "scale": "tiny"}, "validate", "gap before the drop"),
    ]
    for dag, conf, task, message in cases:
        run_id = stack.trigger(dag, conf)
        assert stack.wait_run(dag, run_id) == "failed"
        assert message in stack.task_log(dag, run_id, task), (dag, conf)
    engine = sa.create_engine(stack.stack_env()["ECOM_SERVING_URL"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM validation_runs WHERE ds = :ds"), {"ds": future}).scalar() == 0
    engine.dispose()
    assert "healthy" in stack.script("status").stdout


def test_a_simulation_runs_each_policy_as_a_mapped_task_on_the_workers(stack):
    """ecom_simulation from the REST API: each policy's closed loop is a mapped task on a Celery worker, in a platform
    of its own; the report task gathers their books from XCom through the API server and logs to the MLflow server."""
    dag = "ecom_simulation"
    assert stack.call("PATCH", f"/api/v2/dags/{dag}", {"is_paused": False})["is_paused"] is False
    loop_params = {"interventions": {"holdout_campaigns": 1, "snapshots": 3, "min_child_samples": 20}, "forecast": {"horizon": 7, "origins": 1}}
    conf = {"scale": "tiny", "days": 1, "history_days": 85, "policies": ["platform", "passive"], "pipeline_params": json.dumps(loop_params)}
    run_id = stack.trigger(dag, conf)
    assert stack.wait_run(dag, run_id) == "success", stack.failed_tasks(dag, {"dag_run_id": run_id})
    tis = stack.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert sorted((ti["map_index"], ti["state"]) for ti in tis if ti["task_id"] == "simulate") == [(0, "success"), (1, "success")]
    report = stack.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value")["value"]
    assert set(report["gross_profit"]) == {"platform", "passive"} and report["platform_vs_passive"]["seeds"] == [42]
    found = stack.call("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=ecom_simulation", base=stack.mlflow)
    assert found["experiment"]["name"] == "ecom_simulation"
