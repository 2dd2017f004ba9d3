"""Production configuration against real services: Airflow metadata on PostgreSQL. Celery workers running
tasks through Redis are exercised by the live stack (tests/test_live_stack.py).

Run when ECOM_TEST_POSTGRES_URL is set (.ci/run sets it to the local server)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.postgres


@pytest.fixture
def fresh_postgres_db(postgres_url):
    name = f"airflow_{uuid.uuid4().hex[:8]}"
    server = postgres_url.rsplit("/", 1)[0]
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{server}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _airflow(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_airflow_metadata_on_postgres(fresh_postgres_db, tmp_path):
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    }
    _airflow(env, "db", "migrate")
    _airflow(env, "db", "check")
    _airflow(env, "dags", "reserialize")
    eng = sa.create_engine(fresh_postgres_db)
    with eng.connect() as conn:
        dags = set(conn.execute(sa.text("SELECT dag_id FROM dag")).scalars())
        stored = conn.execute(sa.text("SELECT count(*) FROM serialized_dag WHERE dag_id = 'ecom_ingest'")).scalar()
    eng.dispose()
    assert "ecom_ingest" in dags and stored >= 1
