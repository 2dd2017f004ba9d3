"""The production stack's two descriptions agree and hold what running it needs: docker/compose.yaml (containers)
and docker/Procfile + docker/stack.sh (processes, started for real by tests/test_live_stack.py).

No Docker engine runs here, so the compose file is parsed and each requirement checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from conftest import make_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (REPO / "docker" / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
LONG_RUNNING = [
    "postgres",
    "redis",
    "object-store",
    "mlflow",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
]


def test_stack_has_every_component_and_the_procfile_runs_the_same():
    assert set(LONG_RUNNING) | {"airflow-init", "object-store-init"} <= set(SERVICES)
    procfile = dict(line.split(":", 1) for line in (REPO / "docker" / "Procfile").read_text().splitlines() if line and not line.startswith("#"))
    assert set(procfile) == {"apiserver", "scheduler", "dag-processor", "triggerer", "worker", "worker-gpu", "mlflow"}
    assert "--queues default" in procfile["worker"] and "gpu-worker.sh" in procfile["worker-gpu"]
    assert "--queues gpu" in (REPO / "docker" / "gpu-worker.sh").read_text()


def test_no_secret_in_tracked_files_and_every_one_documented():
    env_example = (REPO / ".env.example").read_text()
    secrets = (
        "POSTGRES_PASSWORD",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    for secret in secrets:
        assert re.search(rf"^{secret}=\s*(#|$)", env_example, re.M), f"{secret} undocumented or given a value in .env.example"
        assert f"${{{secret}" in COMPOSE_TEXT, f"compose does not take {secret} from .env"
    environments = [COMPOSE["x-ecom-env"]] + [svc["environment"] for svc in SERVICES.values() if isinstance(svc.get("environment"), dict)]
    for env in environments:
        for key, value in env.items():
            if re.search("PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"compose.yaml gives {key} a literal value"
    for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", COMPOSE_TEXT):
        assert password.startswith("${"), f"a literal password in a URL of compose.yaml: {password}"
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_airflow_and_mlflow_settings_that_running_needs():
    env = COMPOSE["x-ecom-env"]
    for key in ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        assert env.get(key), key
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")  # psycopg (3) is not installed
    assert "mlflow:5000" in SERVICES["mlflow"]["environment"]["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert "--allowed-hosts" in (REPO / "mlflow" / "start-server.sh").read_text()
    stack = (REPO / "docker" / "stack.sh").read_text()
    for key in ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CELERY__RESULT_BACKEND"):
        assert f"{key}=" in stack, f"the process stack does not set {key}"


def test_workers_preload_the_tasks_libraries_in_both_stacks():
    import importlib.util

    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    import ecom_celery  # in plugins/, on Airflow's path

    assert COMPOSE["x-ecom-env"]["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "ecom_celery.CELERY_CONFIG"
    assert "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=ecom_celery.CELERY_CONFIG" in (REPO / "docker" / "stack.sh").read_text()
    config = ecom_celery.CELERY_CONFIG
    assert {k: v for k, v in config.items() if k != "imports"} == DEFAULT_CELERY_CONFIG  # Airflow's broker, queues, timeouts
    assert [m for m in config["imports"] if importlib.util.find_spec(m.split(".")[0]) is None] == []  # a worker that cannot import one does not start
    assert not [m for m in config["imports"] if m == "ml" or m.startswith("ml.")]  # project modules keep per-process state


def test_mlflow_keeps_its_artifacts_in_the_object_store_in_both_stacks():
    mlflow = SERVICES["mlflow"]["environment"]
    assert mlflow["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://") and "object-store:9000" in mlflow["MLFLOW_S3_ENDPOINT_URL"]
    assert SERVICES["mlflow"]["depends_on"]["object-store-init"]["condition"] == "service_completed_successfully"
    assert "mc mb --ignore-existing" in " ".join(SERVICES["object-store-init"]["entrypoint"])
    stack = (REPO / "docker" / "stack.sh").read_text()
    assert "MLFLOW_ARTIFACTS_DESTINATION=$artifacts" in stack and "artifacts=s3://$S3_BUCKET/mlartifacts" in stack
    assert "MLFLOW_S3_ENDPOINT_URL=$S3_ENDPOINT" in stack and "s3: python docker/loopback_s3.py" in stack


def test_healthchecks_depends_on_conditions_restart_and_logs_volume():
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    for name in LONG_RUNNING[3:]:  # after postgres, redis and the object store
        conditions = {dep: spec["condition"] for dep, spec in SERVICES[name]["depends_on"].items()}
        assert conditions["postgres"] == "service_healthy", name
    for name in ("airflow-worker", "airflow-worker-gpu"):
        conditions = {dep: spec["condition"] for dep, spec in SERVICES[name]["depends_on"].items()}
        assert conditions["airflow-init"] == "service_completed_successfully" and conditions["mlflow"] == "service_healthy"


def test_the_workers_share_nothing_but_services():
    """The lake is in the object store, its commits locked in PostgreSQL; no container mounts another's files (the
    public datasets are read-only input), and the process stack gives the gpu worker a home of its own and hides the
    stack's home from it."""
    env = COMPOSE["x-ecom-env"]
    assert env["ECOM_LAKE_URI"].startswith("s3://") and env["ECOM_LAKE_LOCK_URL"].startswith("postgresql+psycopg2://")
    assert "object-store:9000" in env["AWS_ENDPOINT_URL"]
    for name in ("airflow-worker", "airflow-worker-gpu", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert SERVICES[name]["volumes"] == ["../../shared/data:/data/shared:ro"], name
        assert SERVICES[name]["depends_on"]["object-store-init"]["condition"] == "service_completed_successfully", name
    stack = (REPO / "docker" / "stack.sh").read_text()
    assert "ECOM_LAKE_URI=s3://$S3_BUCKET/lake" in stack and "ECOM_GPU_WORKER_HIDE=$STACK" in stack
    assert "unshare --map-root-user --mount" in (REPO / "docker" / "gpu-worker.sh").read_text()


def test_gpu_profile_has_the_cuda_build_and_reserves_a_gpu():
    gpu = SERVICES["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "profiles" not in SERVICES["airflow-worker"] and SERVICES["airflow-worker"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert "${TORCH_VARIANT}" in (REPO / "docker" / "Dockerfile").read_text()


def test_production_environment_gives_postgres_and_the_mlflow_server(tmp_path):
    # as compose resolves them with nothing set: ${NAME:-default} becomes the default
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in COMPOSE["x-ecom-env"].items()}
    s = make_settings(tmp_path, **{k: v for k, v in env.items() if k != "ECOM_HOME"})
    assert s.serving_url.startswith("postgresql+psycopg2://") and s.mlflow_tracking_uri == "http://mlflow:5000"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")


def test_images_build_from_the_pinned_requirements():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "requirements.txt -c constraints.txt" in dockerfile and "torch==2.13.0" in dockerfile
    init_sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql and "CREATE DATABASE serving" in init_sql
    for script in ("mlflow/start-server.sh", "docker/stack.sh", "docker/gpu-worker.sh"):
        assert (REPO / script).stat().st_mode & 0o111, script
    assert not (REPO / "mlflow" / "__init__.py").exists() and not (REPO / "docker" / "__init__.py").exists()
