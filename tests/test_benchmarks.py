"""Every benchmark takes the same output flags (``--out``, ``--no-mlflow``), and the shared recorder names MLflow
metrics from the rows the benchmark prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import record  # noqa: E402  (a benchmark-side module, imported the way the scripts import it)

SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.stem not in ("record", "statsforecast_anchor"))  # the anchor runs in its own venv


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_takes_out_and_no_mlflow(script):
    shown = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "--out" in shown.stdout and "--no-mlflow" in shown.stdout


def test_row_metrics_name_each_figure_by_its_row_labels():
    rows = [
        {"dataset": "bakery", "model": "ETS (statsmodels)", "mase": 2.17, "origins": ["2017-02-13"], "flag": True},
        {"dataset": "pharma", "model": "global LightGBM + CQR", "mase": 0.73, "wrmsse": float("nan")},
    ]
    assert record.row_metrics(rows, ("dataset", "model")) == {"bakery.ETS _statsmodels.mase": 2.17, "pharma.global LightGBM _ CQR.mase": 0.73}


def test_save_writes_the_json_and_skips_mlflow_when_asked(tmp_path, settings):
    import argparse
    import json

    args = argparse.Namespace(out=tmp_path / "figures.json", no_mlflow=True)
    record.save(args, "a run", {"rows": [{"x": 1}]}, {"x": 1.0})
    written = json.loads(args.out.read_text())
    assert written["rows"] == [{"x": 1}] and "machine" in written
    assert not (settings.home / "mlflow.db").exists()
