"""One settings object, read from environment variables; importing this module has no side effects.

Every variable has an embedded default so that the platform runs on a fresh machine with no services:
SQLite for the serving store and MLflow, local folders for the lake and artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`get_settings` (reads the environment)."""

    home: Path
    """ECOM_HOME: root folder for everything the platform writes locally."""
    lake: Path | str
    """ECOM_LAKE_URI: the lake (zones raw, curated, features, outputs, quarantine, reports, ground_truth): a local
    folder (a Path), or ``s3://bucket/prefix`` in an object store (text; see ml/lake_storage.py)."""
    serving_url: str
    """ECOM_SERVING_URL: SQLAlchemy URL of the serving store (PostgreSQL in production)."""
    mlflow_tracking_uri: str
    """MLFLOW_TRACKING_URI: MLflow tracking + registry backend."""
    mlflow_artifact_root: str
    """ECOM_MLFLOW_ARTIFACTS: where runs store artifacts when the tracking URI is a database."""
    shared_data_dir: Path
    """ECOM_SHARED_DATA: the public evaluation datasets (never copied into the repository)."""
    default_scale: str
    """ECOM_SCALE: synthetic shop size used when a run does not choose one."""
    seed: int
    """ECOM_SEED: seed of the synthetic shop."""
    abuse_rate: float = 0.01
    """ECOM_ABUSE_RATE: share of the synthetic shop's orders that are fraud or abuse (0 for a clean shop)."""

    def describe(self) -> dict[str, str]:
        """Settings as strings, for logs and the CLI's `ecom settings`."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _path(env: dict[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).expanduser().resolve() if value else default


def get_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (defaults to ``os.environ``); never creates folders."""
    env = dict(os.environ if env is None else env)
    home = _path(env, "ECOM_HOME", REPO_ROOT / ".ecom")
    lake_uri = env.get("ECOM_LAKE_URI", "")
    lake: Path | str = lake_uri.rstrip("/") if "://" in lake_uri else _path(env, "ECOM_LAKE_URI", home / "lake")
    scale = env.get("ECOM_SCALE", "demo")
    try:
        seed = int(env.get("ECOM_SEED", "42"))
    except ValueError as exc:
        raise ValueError(f"ECOM_SEED must be an integer, got {env['ECOM_SEED']!r}") from exc
    return Settings(
        home=home,
        lake=lake,
        serving_url=env.get("ECOM_SERVING_URL", f"sqlite:///{home / 'serving.db'}"),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        mlflow_artifact_root=env.get("ECOM_MLFLOW_ARTIFACTS", (home / "mlartifacts").as_uri()),
        shared_data_dir=_path(env, "ECOM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"),
        default_scale=scale,
        seed=seed,
        abuse_rate=_rate(env, "ECOM_ABUSE_RATE", 0.01),
    )


def _rate(env: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError as exc:
        raise ValueError(f"{name} must be a number in [0, 0.5], got {env[name]!r}") from exc
    if not 0 <= value <= 0.5:
        raise ValueError(f"{name} must be a number in [0, 0.5], got {value}")
    return value
