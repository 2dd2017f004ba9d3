"""Forecasting at scale: the global LightGBM on 20,000 daily series x 2 years, beside statsmodels ETS and the
speed anchor, Nixtla statsforecast AutoETS, on the same series in the same run.

    python benchmarks/forecast_scale.py --series 20000 --days 730 --anchor-python .venv-anchor/bin/python \\
        --out benchmarks/results/forecast_scale.json      # `make bench-forecast-scale` sets the anchor up

The panel comes from a seeded generator (below), not from simulating the `large` shop's 100k customers order by
order (that simulation is what `ecom ingest --scale large` does, and takes far longer than the forecast): per
series a log-normal level (median 1 unit/day, so many slow and intermittent movers), a weekly profile, a yearly
wave, a trend, 2% promotion days at 1.8x, and negative binomial noise. The last ``horizon`` days are held out:
every model fits on the days before them and is scored on them (MASE, P10-P90 coverage). The per-series models,
statsmodels ETS and the AutoETS anchor, run on one random sample of the series (``--sample``): on 702-day series
they took about 1 s (ETS, two candidate models) and 0.2 s (AutoETS) per series and core here, so all 20,000 would
take hours; their series per second are compared with LightGBM's over all series. Goal: the global LightGBM
forecasts >= 20k series x 2 years in under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import record

from ml.forecast import baselines, evaluate
from ml.forecast.lgbm import GlobalLGBM, LGBMConfig

log = logging.getLogger("forecast_scale")
START = "2023-01-02"


def synthetic_panel(n_series: int, n_days: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_days)[None, :]
    level = rng.lognormal(0.0, 1.2, (n_series, 1))
    profile = np.array([0.9, 1.0, 0.95, 1.0, 1.15, 1.35, 0.65])[None, :] ** rng.uniform(0.5, 1.5, (n_series, 1))
    weekly = np.take_along_axis(profile, np.broadcast_to(t % 7, (n_series, n_days)), axis=1)
    yearly = 1 + 0.2 * rng.uniform(0, 1, (n_series, 1)) * np.sin(2 * np.pi * (t / 365 + rng.uniform(0, 1, (n_series, 1))))
    trend = np.exp(rng.normal(0, 0.3, (n_series, 1)) * t / n_days)
    promo = np.where(rng.random((n_series, n_days)) < 0.02, 1.8, 1.0)
    mean = level * weekly * yearly * trend * promo
    dispersion = 2.0
    return rng.negative_binomial(dispersion, dispersion / (dispersion + mean)).astype(np.float64)


def scored(name: str, history: np.ndarray, actual: np.ndarray, forecast: evaluate.Forecast, seconds: float) -> dict:
    metrics = evaluate.summarize([evaluate.score(history, actual, forecast)])
    return {"model": name, "series": history.shape[0], "seconds": seconds, "series_per_second": history.shape[0] / seconds, **metrics}


def anchor(python: str, history: np.ndarray, horizon: int) -> tuple[evaluate.Forecast, float]:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "panel.npy", history)
        script = Path(__file__).with_name("statsforecast_anchor.py")
        subprocess.run([python, str(script), str(Path(tmp) / "panel.npy"), START, str(horizon), str(Path(tmp) / "out.npz")], check=True)
        out = np.load(Path(tmp) / "out.npz")
        return evaluate.Forecast(out["values"]), float(out["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--lgbm-rows", type=int, default=4_000_000, help="LightGBM training rows at most (LGBMConfig.max_rows)")
    parser.add_argument("--sample", type=int, default=200, help="series for the per-series models (ETS and the AutoETS anchor)")
    parser.add_argument("--anchor-python", help="interpreter with statsforecast installed (omit to skip the anchor)")
    parser.add_argument("--seed", type=int, default=0)
    record.add_arguments(parser, "benchmarks/results/forecast_scale.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    values = synthetic_panel(args.series, args.days, args.seed)
    dates = pd.date_range(START, periods=args.days, freq="D")
    h = args.horizon
    history, actual, known = values[:, :-h], values[:, -h:], dates[:-h]
    log.info("panel: %d series x %d days, %.1f%% zero days", *values.shape, 100 * (values == 0).mean())
    rows = []

    t0 = time.perf_counter()
    naive = baselines.seasonal_naive(history, h)
    rows.append(scored("seasonal naive", history, actual, naive, time.perf_counter() - t0))

    t0 = time.perf_counter()
    model = GlobalLGBM(LGBMConfig(max_rows=args.lgbm_rows)).fit(history, known, h)
    fitted = time.perf_counter() - t0
    forecast = model.predict(history, known, h)
    rows.append(scored("global LightGBM + CQR", history, actual, forecast, time.perf_counter() - t0) | {"fit_seconds": fitted})
    lgbm_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sample = np.sort(np.random.default_rng(1).choice(args.series, min(args.sample, args.series), replace=False))
    t0 = time.perf_counter()
    ets = baselines.ets(history[sample], h)
    rows.append(scored("ETS (statsmodels, sample)", history[sample], actual[sample], ets, time.perf_counter() - t0))

    if args.anchor_python:
        fc, seconds = anchor(args.anchor_python, history[sample], h)
        rows.append(scored("AutoETS (statsforecast, sample)", history[sample], actual[sample], fc, seconds))
        rows[-1]["anchor"] = True
    naive_mase = rows[0]["mase"]
    anchor_rate = next((r["series_per_second"] for r in rows if r.get("anchor")), None)
    for row in rows:
        row["mase_vs_seasonal_naive"] = row["mase"] / naive_mase
        row["speed_vs_autoets"] = None if anchor_rate is None else row["series_per_second"] / anchor_rate

    print(f"\n{args.series:,} series x {args.days} days, horizon {h}, last {h} days held out, 2 cores unless the machine has more")
    print(f"{'model':<28}{'series':>8}{'seconds':>9}{'series/s':>10}{'vs AutoETS':>11}{'MASE':>7}{'vs naive':>9}{'P10-P90':>9}")
    for r in rows:
        speed = "" if r["speed_vs_autoets"] is None else f"{r['speed_vs_autoets']:.2f}x"
        print(
            f"{r['model']:<28}{r['series']:>8}{r['seconds']:>9.1f}{r['series_per_second']:>10.1f}{speed:>11}"
            f"{r['mase']:>7.3f}{r['mase_vs_seasonal_naive']:>9.3f}{r['coverage_p10_p90']:>9.1%}"
        )
    print(f"LightGBM peak RSS {lgbm_peak_mb:,.0f} MB; the per-series models ran on the same {len(sample)} sampled series")
    payload = {
        "rows": rows,
        "series": args.series,
        "days": args.days,
        "horizon": h,
        "lgbm_max_rows": args.lgbm_rows,
        "lgbm_peak_rss_mb": lgbm_peak_mb,
        "sample": len(sample),
    }
    metrics = record.row_metrics(rows, ("model",)) | {"lgbm_peak_rss_mb": lgbm_peak_mb}
    record.save(args, f"forecast_scale {args.series} series", payload, metrics, {"series": args.series, "days": args.days, "horizon": h, "sample": len(sample)})


if __name__ == "__main__":
    main()
