"""The production-like stack is consistent: services, queues, and settings that the platform can read."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import make_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())


def test_stack_has_every_component():
    expected = {"postgres", "redis", "mlflow", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-worker-gpu"}
    assert expected <= set(COMPOSE["services"])


def test_gpu_worker_takes_only_the_gpu_queue_and_reserves_a_gpu():
    gpu = COMPOSE["services"]["airflow-worker-gpu"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    default = COMPOSE["services"]["airflow-worker"]
    assert default["command"][default["command"].index("--queues") + 1] == "default"


def test_production_environment_gives_postgres_and_the_mlflow_server(tmp_path):
    env = {k: str(v) for k, v in COMPOSE["x-ecom-env"].items()}
    s = make_settings(tmp_path, **{k: v for k, v in env.items() if k != "ECOM_HOME"})
    assert s.serving_url.startswith("postgresql+psycopg2://") and s.mlflow_tracking_uri == "http://mlflow:5000"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")


def test_images_build_from_the_pinned_requirements():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "requirements.txt -c constraints.txt" in dockerfile and "torch==2.13.0" in dockerfile
    init_sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql and "CREATE DATABASE serving" in init_sql
    assert (REPO / "mlflow" / "start-server.sh").stat().st_mode & 0o111
    assert not (REPO / "mlflow" / "__init__.py").exists() and not (REPO / "docker" / "__init__.py").exists()
