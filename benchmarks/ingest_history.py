"""Ingest of the synthetic shop's history through the gate: land, validate and publish timed separately.

    python benchmarks/ingest_history.py --scale demo --days 365 --out benchmarks/results/ingest_history.json

One drop of ``--days`` days (the history `make demo` lands), into a fresh lake and serving store under a temporary
ECOM_HOME, repeated ``--repeat`` times; the table reports each step's median seconds. The anchor is the same
command on an earlier commit (``--label`` names the row), run on the same machine just before; the last column is
each row's total over the first row's. Issue 18 allows the atomic day commit and the manifest checks to slow the
ingest by at most 10%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import record

STEPS = ("land", "validate", "publish")


def one_run(scale: str, days: int, end: dt.date) -> dict[str, float]:
    """A fresh home, the shop opened so its history ends on ``end``, and one drop of ``days`` days."""
    from ml import ingest
    from ml.settings import get_settings
    from ml.sources import SourceRequest, synthetic_source

    with tempfile.TemporaryDirectory(prefix="ecom-bench-") as home:
        os.environ["ECOM_HOME"] = home
        os.environ.pop("ECOM_LAKE_DIR", None)
        os.environ.pop("ECOM_SERVING_URL", None)
        settings = get_settings()
        ingest.ensure_dirs(settings)
        synthetic_source.open_shop(settings, scale, end)
        request = SourceRequest(source="synthetic", ds=end, scale=scale, backfill_days=days - 1)
        seconds = {}
        t0 = time.perf_counter()
        ingest.land(settings, request)
        seconds["land"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ingest.validate(settings, end)
        seconds["validate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ingest.publish(settings, end)
        seconds["publish"] = time.perf_counter() - t0
        seconds["total"] = sum(seconds.values())
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default=None, help="row label (default: the current commit)")
    record.add_arguments(parser, None)  # an existing --out file gets this row added
    args = parser.parse_args()
    label = args.label or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    runs = [one_run(args.scale, args.days, dt.date.fromisoformat(args.end)) for _ in range(args.repeat)]
    row = {
        "label": label,
        "scale": args.scale,
        "days": args.days,
        "repeat": args.repeat,
        **{step: round(statistics.median(r[step] for r in runs), 2) for step in (*STEPS, "total")},
        "runs": runs,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }
    print(f"{'label':<36}{'land s':>9}{'validate s':>12}{'publish s':>11}{'total s':>9}{'vs first':>10}")
    rows = [row]
    if args.out and args.out.exists():
        rows = [r for r in json.loads(args.out.read_text())["rows"] if r["label"] != label] + [row]
    for r in rows:
        ratio = r["total"] / rows[0]["total"]
        print(f"{r['label']:<36}{r['land']:>9.2f}{r['validate']:>12.2f}{r['publish']:>11.2f}{r['total']:>9.2f}{ratio:>9.3f}x")
    metrics = {step: row[step] for step in (*STEPS, "total")} | {"total_vs_first": row["total"] / rows[0]["total"]}
    params = {k: row[k] for k in ("label", "scale", "days", "repeat")}
    record.save(args, f"ingest_history {label}", {"benchmark": "ingest_history", "rows": rows}, metrics, params)


if __name__ == "__main__":
    main()
