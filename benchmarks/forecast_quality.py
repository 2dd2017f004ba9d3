"""Forecast accuracy on real daily sales: rolling-origin backtest of seasonal naive, ETS, the global LightGBM and
their ensemble (ETS on smooth series, LightGBM on intermittent ones).

    python benchmarks/forecast_quality.py --bakery ../shared/data/forecast/bakery-breadbasket \\
        --pharma ../shared/data/forecast/pharma-sales-daily --out benchmarks/results/forecast_quality.json

Horizon 28 days, 3 origins (bakery: 14 days apart, its log covers 159 days; pharma: 28 days apart). MASE is the
mean over series with a non-zero in-sample seasonal-naive error; the goals: the champion's MASE <= 0.85x seasonal
naive's, P10-P90 coverage of 80% +- 5 points, and the ensemble no worse than the best single model on each of MASE,
WRMSSE and pinball (the ``vs best`` columns: the ensemble's figure over the best other model's).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import record

from ml.forecast import data, evaluate
from ml.forecast.model import method
from ml.sources import public

log = logging.getLogger("forecast_quality")

MODELS = {
    "seasonal naive": method("seasonal_naive"),
    "ETS (statsmodels)": method("ets"),
    "global LightGBM + CQR": method("lgbm"),
    "ensemble ETS/LightGBM": method("ensemble"),
}
HEADLINE = ("mase", "wrmsse", "pinball")


def backtest(name: str, panel: data.Panel, horizon: int, step: int, n_origins: int) -> list[dict]:
    origins = evaluate.rolling_origins(panel.values.shape[1], horizon, n_origins, step)
    rows = []
    for model, fit_and_forecast in MODELS.items():
        result = evaluate.backtest(panel.values, panel.dates, fit_and_forecast, horizon, origins)
        rows.append({"dataset": name, "model": model, **result.metrics, "series": panel.n_series, "origins": [str(o.date()) for o in result.origins]})
        log.info("%s %s: %s", name, model, rows[-1])
    naive = rows[0]["mase"]
    for row in rows:
        row["mase_vs_seasonal_naive"] = row["mase"] / naive
    ensemble, singles = rows[-1], rows[:-1]
    for metric in HEADLINE:
        ensemble[f"{metric}_vs_best_single"] = ensemble[metric] / min(r[metric] for r in singles)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bakery", type=Path)
    parser.add_argument("--pharma", type=Path)
    parser.add_argument("--horizon", type=int, default=28)
    record.add_arguments(parser, "benchmarks/results/forecast_quality.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    for name, path, read, step in (("bakery", args.bakery, public.read_bakery, 14), ("pharma", args.pharma, public.read_pharma, 28)):
        if path is not None:
            tables = read(path)
            rows += backtest(name, data.demand_panel(tables["orders"], tables["order_items"]), args.horizon, step, 3)
    print(f"\n{'dataset':<9}{'model':<24}{'series':>7}{'MASE':>8}{'vs naive':>9}{'WRMSSE':>8}{'pinball':>9}{'P10-P90':>9}{'seconds':>9}  vs best single")
    for r in rows:
        versus = "  ".join(f"{m} {r[f'{m}_vs_best_single']:.3f}" for m in HEADLINE if f"{m}_vs_best_single" in r)
        print(
            f"{r['dataset']:<9}{r['model']:<24}{r['series']:>7}{r['mase']:>8.3f}{r['mase_vs_seasonal_naive']:>9.3f}"
            f"{r['wrmsse']:>8.3f}{r['pinball']:>9.3f}{r['coverage_p10_p90']:>9.1%}{r['seconds']:>9.1f}  {versus}"
        )
    record.save(args, "forecast_quality", {"rows": rows}, record.row_metrics(rows, ("dataset", "model")), {"horizon": args.horizon})


if __name__ == "__main__":
    main()
