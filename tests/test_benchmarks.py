"""Every benchmark takes the same output flags (``--out``, ``--no-mlflow``), and the shared recorder names MLflow
metrics from the rows the benchmark prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import record  # noqa: E402  (a benchmark-side module, imported the way the scripts import it)

SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.stem not in ("record", "statsforecast_anchor"))  # the anchor runs in its own venv


# each script's --help, run as a script in one interpreter (the imports they share are paid once); prints the
# scripts whose help lacks a flag
HELP_CHECK = """
import contextlib, io, runpy, sys
missing = []
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
        runpy.run_path(path, run_name="__main__")
    missing += [f"{path} {flag}" for flag in ("--out", "--no-mlflow") if flag not in shown.getvalue()]
print("MISSING", missing)
"""


def test_every_benchmark_takes_out_and_no_mlflow():
    paths = [str(BENCHMARKS / script) for script in SCRIPTS]
    shown = subprocess.run([sys.executable, "-c", HELP_CHECK, *paths], capture_output=True, text=True, timeout=300, cwd=BENCHMARKS)
    assert shown.returncode == 0, shown.stderr
    assert "MISSING []" in shown.stdout, shown.stdout
    assert len(SCRIPTS) >= 12


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


def test_vrptw_in_vrplib_format_keeps_its_windows_and_the_checker_reads_the_file_itself(shared_data, tmp_path):
    """A Gehring-Homberger VRPTW file: the best-known solution replays feasible at exactly its published cost under
    the checker's own reader (DIMACS tenths, windows, service times, vehicles); breaking a window is caught; a
    section the benchmark does not model is refused."""
    import numpy as np
    import pytest
    import routing_vrp
    import vrplib

    path = shared_data / "vrp" / "gehring_homberger" / "R1_10_2.vrp"
    solver_view, _, _, best_known = routing_vrp.read_instance(path, None)
    problem, cost, duration = routing_vrp.vrplib_problem(routing_vrp.read_vrplib_text(path))
    assert solver_view.fleet == problem.fleet and np.array_equal(solver_view.window_end, problem.window_end)
    assert problem.service[1:].min() > 0 and problem.window_end[1:].max() < problem.fleet.shift_end
    routes = vrplib.read_solution(path.with_suffix(".sol"))["routes"]
    replayed = routing_vrp.check(problem, routes, cost=cost, duration=duration)
    assert replayed.feasible and replayed.cost == pytest.approx(best_known, abs=1e-6)
    late = [list(reversed(routes[0])), *routes[1:]]
    assert not routing_vrp.check(problem, late, cost=cost, duration=duration).feasible

    with_release_times = tmp_path / "release.vrp"
    release = "\n".join(f"{i} 0" for i in range(1, 1002))
    with_release_times.write_text(path.read_text().replace("DEPOT_SECTION", f"RELEASE_TIME_SECTION\n{release}\nDEPOT_SECTION"))
    with_release_times.with_suffix(".sol").write_text(path.with_suffix(".sol").read_text())
    with pytest.raises(SystemExit, match="release_time"):
        routing_vrp.read_instance(with_release_times, None)


def test_scoring_runs_report_the_median_and_the_worst_ratio_to_the_bound():
    import recsys_scoring

    summary = recsys_scoring.summarise_runs([{"ratio_to_bound": r} for r in (2.4, 1.9, 3.1, 2.0, 2.2)])
    assert (summary["runs"], summary["ratio_median"], summary["ratio_worst"]) == (5, 2.2, 3.1)
    assert set(recsys_scoring.processor()) >= {"model", "vector_extensions"}
