"""What every benchmark does with its figures once it has printed them: write the JSON file (``--out``) and, unless
``--no-mlflow``, log the same figures as one MLflow run in the configured tracking store (experiment
``ecom_benchmarks`` unless the benchmark names its own), with the JSON as an artifact, so a reviewer finds the
benchmarks beside the training runs."""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXPERIMENT = "ecom_benchmarks"


def add_arguments(parser: argparse.ArgumentParser, out: str | None) -> None:
    """``--out`` (default ``out``) and ``--no-mlflow``."""
    parser.add_argument("--out", type=Path, default=None if out is None else Path(out), help="JSON file for the figures")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the figures to MLflow")


def disk_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (0 if it does not exist): a lake's size on disk."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def metric_name(*parts: Any) -> str:
    """An MLflow metric name from labels: characters MLflow refuses become underscores."""
    return ".".join(re.sub(r"[^0-9A-Za-z_\-./ ]+", "_", str(part)).strip("_ ") for part in parts)


def row_metrics(rows: Iterable[dict[str, Any]], labels: tuple[str, ...]) -> dict[str, float]:
    """``{label values . figure: value}`` for every finite number of every row."""
    out = {}
    for row in rows:
        for key, value in row.items():
            if key not in labels and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                out[metric_name(*(row.get(label) or "" for label in labels), key)] = float(value)
    return out


def save(
    args: argparse.Namespace,
    run_name: str,
    payload: dict[str, Any],
    metrics: dict[str, float],
    params: dict[str, Any] | None = None,
    figures: dict[str, Any] | None = None,
    experiment: str = EXPERIMENT,
) -> None:
    """Write ``payload`` (plus the machine) to ``args.out`` and log ``metrics``, ``params`` and ``figures``
    (artifact path -> matplotlib figure) to MLflow unless ``args.no_mlflow``."""
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload | {"machine": platform.platform()}, indent=2, default=str))
        print(f"written {args.out}")
    if args.no_mlflow:
        return
    from ml import registry
    from ml.settings import get_settings

    finite = {name: value for name, value in metrics.items() if math.isfinite(value)}
    artifacts = () if args.out is None else (args.out,)
    run_id = registry.log_benchmark_run(get_settings(), experiment, run_name, params or {}, finite, figures or {}, artifacts)
    print(f"MLflow: run {run_id} in experiment {experiment}")
