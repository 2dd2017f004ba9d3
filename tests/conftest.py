"""Shared fixtures. Airflow reads its configuration at import, so its environment is set here, first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ecom-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "False",
    }
)

from ml.settings import Settings, get_settings  # noqa: E402 (Airflow reads its environment at import)

POSTGRES_URL = os.environ.get("ECOM_TEST_POSTGRES_URL")
"""Set (as .ci/run does) to run the production-configuration tests against a PostgreSQL server."""


def committed_digests(lake_dir: Path, zone: str) -> dict[str, str]:
    """The committed rows of every table and day of a lake zone, hashed: a rerun writes new files of the same rows,
    so files are not compared."""
    import hashlib

    import pandas as pd

    from ml import lake

    found = {}
    for table in sorted(p.name for p in (lake_dir / zone).iterdir()):
        for day in lake.list_partitions(lake_dir, zone, table):
            frame = lake.read_partition(lake_dir, zone, table, day)
            digest = hashlib.sha256(pd.util.hash_pandas_object(frame).values.tobytes() + str(list(frame.dtypes)).encode())
            found[f"{table}/{day}"] = digest.hexdigest()
    return found


def make_settings(home: Path, **extra: str) -> Settings:
    env = {"ECOM_HOME": str(home), "ECOM_SHARED_DATA": os.environ.get("ECOM_SHARED_DATA", str(REPO.parent / "shared" / "data"))}
    return get_settings(env | extra)


@pytest.fixture(autouse=True)
def _mlflow_environment_restored():
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI to os.environ, where code reading the environment
    (the DAGs' get_settings()) would find an earlier test's MLflow store: restore it after every test."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings rooted in a fresh folder; exported so code that reads the environment agrees."""
    s = make_settings(tmp_path / "ecom")
    monkeypatch.setenv("ECOM_HOME", str(s.home))
    monkeypatch.setenv("ECOM_SHARED_DATA", str(s.shared_data_dir))
    return s


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = make_settings(Path(tempfile.gettempdir())).shared_data_dir
    if not path.exists():
        pytest.fail(f"the public datasets are expected at {path} (set ECOM_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.skip("ECOM_TEST_POSTGRES_URL is not set: production-configuration test not requested on this machine")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An Airflow metadata database (SQLite) in a temporary AIRFLOW_HOME, migrated once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    yield _AIRFLOW_HOME
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
