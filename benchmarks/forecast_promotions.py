"""What the promotion calendar buys the global LightGBM: a rolling-origin backtest on the synthetic shop (whose
promotions lift demand through per-product price elasticity, planned 28 days ahead), with and without the
promotion features, same origins and settings.

    python benchmarks/forecast_promotions.py --scale demo --origins 3 --out benchmarks/results/forecast_promotions.json

Reports MASE and weighted scaled error over every series, and the mean absolute error of P50 on promoted and
unpromoted target days.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import record

from ml.forecast import data, evaluate
from ml.forecast.model import method
from ml.forecast.train import ForecastConfig
from ml.sources import synthetic


def panel_of(scale: str, seed: int) -> data.Panel:
    cfg = synthetic.scale_config(scale, seed)
    world = synthetic.build_world(cfg)
    tables = synthetic.simulate(world, cfg.start, cfg.end).tables
    panel = data.demand_panel(tables["orders"], tables["order_items"], end=str(cfg.end))
    panel.discount = data.promotion_calendar(tables["promotions"], panel.keys, panel.dates[0], len(panel.dates) + data.PROMOTION_LOOKAHEAD)
    return panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--origin-step", type=int, default=28)
    record.add_arguments(parser, "benchmarks/results/forecast_promotions.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    panel = panel_of(args.scale, args.seed)
    config = ForecastConfig(horizon=args.horizon, origins=args.origins, origin_step=args.origin_step)
    origins = evaluate.rolling_origins(panel.values.shape[1], args.horizon, args.origins, args.origin_step)
    promoted = np.concatenate([panel.discount[:, o : o + args.horizon] > 0 for o in origins], axis=1)
    actual = np.concatenate([panel.values[:, o : o + args.horizon] for o in origins], axis=1)
    rows = []
    for name, calendar in (("LightGBM + promotions", panel.discount), ("LightGBM without promotions", None)):
        forecasts, started = [], time.perf_counter()
        fit = method("lgbm", config.lgbm())

        def recorded(history, dates, horizon, discount, fit=fit, forecasts=forecasts):
            forecasts.append(fit(history, dates, horizon, discount))
            return forecasts[-1]

        result = evaluate.backtest(panel.values, panel.dates, recorded, args.horizon, origins, calendar)
        p50 = np.concatenate([f.values[1] for f in forecasts], axis=1)
        error = np.abs(p50 - actual)
        rows.append(
            {
                "model": name,
                "mase": result.metrics["mase"],
                "wrmsse": result.metrics["wrmsse"],
                "coverage_p10_p90": result.metrics["coverage_p10_p90"],
                "mae_promoted_days": float(error[promoted].mean()),
                "mae_other_days": float(error[~promoted].mean()),
                "seconds": time.perf_counter() - started,
            }
        )
    print(
        f"\nSynthetic shop {args.scale}: {panel.n_series} series x {len(panel.dates)} days, {args.origins} origins of "
        f"{args.horizon} days; {promoted.mean():.1%} of target days promoted"
    )
    print(f"{'model':<30}{'MASE':>8}{'WRMSSE':>8}{'cover':>8}{'MAE promo':>11}{'MAE other':>11}{'s':>7}")
    for r in rows:
        print(
            f"{r['model']:<30}{r['mase']:>8.3f}{r['wrmsse']:>8.3f}{r['coverage_p10_p90']:>8.1%}"
            f"{r['mae_promoted_days']:>11.3f}{r['mae_other_days']:>11.3f}{r['seconds']:>7.0f}"
        )
    payload = {"scale": args.scale, "series": panel.n_series, "days": len(panel.dates), "promoted_share": float(promoted.mean()), "rows": rows}
    record.save(args, f"forecast_promotions {args.scale}", payload, record.row_metrics(rows, ("model",)), vars(args) | {"out": str(args.out)})


if __name__ == "__main__":
    main()
