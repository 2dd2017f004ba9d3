"""The daily chain at a shop's scale (issue 20, `make bench-scale`): land the synthetic shop's history through the
gate, then one daily drop, then each pipeline's daily run for that day, every step a fresh ``ecom`` process as a
task is. For each step: wall time, peak RSS (the largest resident set of the step's process or any process it
started) and the lake's size on disk after it.

    python benchmarks/scale_chain.py --scale demo --history-days 365 --out benchmarks/results/scale_chain_demo.json
    python benchmarks/scale_chain.py --scale large --history-days 730 --out benchmarks/results/scale_chain_large.json
    python benchmarks/scale_chain.py --compare benchmarks/results/scale_chain_demo.json benchmarks/results/scale_chain_large.json

``--compare`` prints how each step's time and memory grow from the first run to the second. The run uses its own
``ECOM_HOME`` under ``--work`` (default: a temporary folder, removed afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

# Run a command and report the peak RSS of every process it started and waited for (ru_maxrss of the children is
# the largest of them, in KiB on Linux), so that process pools inside a step count.
MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def chain(scale: str, history_days: int, end: dt.date, epochs: int) -> list[tuple[str, list[str]]]:
    """The steps, in order: the history (everything before ``end``, in drops the gate takes whole), the daily drop of ``end``, then
    each pipeline for ``end``, as ``ecom demo`` runs them."""
    ds = ["--ds", end.isoformat()]
    return [
        ("history: land + gate + publish", ["history", "--scale", scale, "--days", str(history_days), "--end", (end - dt.timedelta(days=1)).isoformat()]),
        ("daily drop: land + gate + publish", ["ingest", "--scale", scale, "--backfill-days", "0", *ds]),
        (f"recommendations (SASRec, {epochs} epochs, CPU)", ["recommend", "--model", "sasrec", "--epochs", str(epochs), *ds]),
        ("demand forecast (LightGBM)", ["forecast", "--model", "lgbm", *ds]),
        ("inventory plan (MILP per warehouse)", ["plan", *ds]),
        ("customer segments", ["segments", *ds]),
        ("interventions (coupons)", ["intervene", *ds]),
        ("order risk", ["risk", *ds]),
        ("delivery routes", ["route", *ds]),
    ]


def run_step(name: str, args: list[str], env: dict[str, str], work: Path) -> dict[str, object]:
    """Run one step and measure it; a step that fails is reported with its error's end, and the chain goes on
    (the later pipelines need only the day's drop)."""
    rss_file = work / "rss.txt"
    ecom = str(Path(sys.executable).with_name("ecom"))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, str(rss_file), ecom, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_gb = int(rss_file.read_text()) * 1024 / 1e9
    lake_gb = record.disk_bytes(work / "ecom" / "lake") / 1e9
    logging.info("%-48s %8.1f s  peak RSS %6.2f GB  lake %6.2f GB%s", name, seconds, peak_gb, lake_gb, "  FAILED" if done.returncode else "")
    measured = {"step": name, "command": "ecom " + " ".join(args), "seconds": seconds, "peak_rss_gb": peak_gb, "lake_gb": lake_gb}
    if done.returncode != 0:
        error = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
        logging.error("step %r failed (exit %d):\n%s", name, done.returncode, error)
        measured["failed"] = error[-1000:]
    return measured


def compare(small: dict, large: dict) -> None:
    a_name, b_name = small["scale"], large["scale"]
    print(f"\n{'step':<48}{a_name + ' s':>10}{b_name + ' s':>10}{'time x':>8}{a_name + ' GB':>10}{b_name + ' GB':>10}{'RSS x':>8}")
    for a, b in zip(small["steps"], large["steps"], strict=True):
        print(
            f"{a['step']:<48}{a['seconds']:>10.1f}{b['seconds']:>10.1f}{b['seconds'] / a['seconds']:>8.1f}"
            f"{a['peak_rss_gb']:>10.2f}{b['peak_rss_gb']:>10.2f}{b['peak_rss_gb'] / a['peak_rss_gb']:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2026, 11, 29), help="the day the chain runs for")
    parser.add_argument("--epochs", type=int, default=2, help="SASRec epochs (on CPU)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the run's ECOM_HOME")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("SMALL_JSON", "LARGE_JSON"))
    record.add_arguments(parser, None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.compare:
        compare(*(json.loads(p.read_text()) for p in args.compare))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix=f"scale-chain-{args.scale}-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOM_")} | {
        "ECOM_HOME": str(work / "ecom"),
        "ECOM_SHARED_DATA": os.environ.get("ECOM_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    }
    try:
        steps = [run_step(name, command, env, work) for name, command in chain(args.scale, args.history_days, args.end, args.epochs)]
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.scale} shop, {args.history_days} days of history, chain for {args.end}")
    print(f"{'step':<48}{'seconds':>10}{'peak RSS GB':>13}{'lake GB':>10}")
    for s in steps:
        print(f"{s['step']:<48}{s['seconds']:>10.1f}{s['peak_rss_gb']:>13.2f}{s['lake_gb']:>10.2f}{'  FAILED' if 'failed' in s else ''}")
    payload = {"scale": args.scale, "history_days": args.history_days, "end": args.end, "epochs": args.epochs, "steps": steps}
    metrics = record.row_metrics(steps, ("step",))
    record.save(args, f"scale_chain {args.scale}", payload, metrics, {k: str(getattr(args, k)) for k in ("scale", "history_days", "end", "epochs")})
    failed = [s["step"] for s in steps if "failed" in s]
    if failed:
        raise SystemExit(f"failed steps: {failed}")


if __name__ == "__main__":
    main()
