"""Forecast accuracy on a rolling-origin backtest: MASE, a volume-weighted RMSSE (in the spirit of M5's WRMSSE),
pinball loss and P10-P90 interval coverage. One module for every model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Forecast:
    """Quantile forecasts ``values[q, series, step]`` for QUANTILES, from one origin."""

    values: np.ndarray

    @property
    def p50(self) -> np.ndarray:
        return self.values[1]


def seasonal_scale(history: np.ndarray, season: int = 7, power: int = 1) -> np.ndarray:
    """Per series, the in-sample mean |error|^power of the seasonal naive forecast (MASE's / RMSSE's scale)."""
    diffs = np.abs(history[:, season:] - history[:, :-season]) ** power
    return diffs.mean(axis=1)


def rolling_origins(n_days: int, horizon: int, n_origins: int, step: int, season: int = 7) -> list[int]:
    """Origins (index of the first forecast period), oldest first, the last one leaving exactly ``horizon``
    periods; the first needs twice the horizon and more than a season of history (seasonal naive's scale)."""
    last = n_days - horizon
    origins = [last - step * i for i in range(n_origins)][::-1]
    if origins[0] < max(2 * horizon, season + 1):
        raise ValueError(f"{n_days} periods cannot hold {n_origins} origins {step} periods apart with horizon {horizon} and season {season}")
    return origins


def score(history: np.ndarray, actual: np.ndarray, forecast: Forecast, season: int = 7) -> dict[str, np.ndarray]:
    """Per-series metrics for one origin; series whose seasonal naive scale is zero get NaN scaled errors."""
    p10, p50, p90 = forecast.values
    mae_scale = seasonal_scale(history, season)
    mse_scale = seasonal_scale(history, season, power=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        mase = np.where(mae_scale > 0, np.abs(actual - p50).mean(axis=1) / mae_scale, np.nan)
        rmsse = np.where(mse_scale > 0, np.sqrt(((actual - p50) ** 2).mean(axis=1) / mse_scale), np.nan)
    pinball = np.mean([np.maximum(q * (actual - f), (q - 1) * (actual - f)).mean(axis=1) for q, f in zip(QUANTILES, forecast.values, strict=True)], axis=0)
    covered = ((actual >= p10) & (actual <= p90)).mean(axis=1)
    return {"mase": mase, "rmsse": rmsse, "pinball": pinball, "coverage": covered, "weight": history[:, -28:].sum(axis=1)}


def summarize(per_origin: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean MASE over scalable series, volume-weighted RMSSE, pinball and coverage over all origins."""
    stacked = {k: np.concatenate([m[k] for m in per_origin]) for k in per_origin[0]}
    ok = np.isfinite(stacked["rmsse"]) & (stacked["weight"] > 0)
    return {
        "mase": float(np.nanmean(stacked["mase"])),
        "wrmsse": float(np.average(stacked["rmsse"][ok], weights=stacked["weight"][ok])) if ok.any() else float("nan"),
        "pinball": float(stacked["pinball"].mean()),
        "coverage_p10_p90": float(stacked["coverage"].mean()),
        "series_scored": int(np.isfinite(stacked["mase"]).sum() / len(per_origin)),
    }


Method = Callable[[np.ndarray, pd.DatetimeIndex, int, np.ndarray | None], Forecast]
"""A forecasting method: (history[series, day], its dates, horizon, promotion calendar or None) -> Forecast (fits
on the history; the calendar runs from the first history day past the horizon: promotions are planned)."""


@dataclass
class Backtest:
    origins: list[pd.Timestamp]  # first forecast day of each origin, oldest first
    metrics: dict[str, float]  # ``summarize`` over every origin, plus seconds and series per second
    last: Forecast  # the newest origin's forecast (for fan charts)


def backtest(
    values: np.ndarray, dates: pd.DatetimeIndex, method: Method, horizon: int, origins: list[int], discount: np.ndarray | None = None, season: int = 7
) -> Backtest:
    """Fit ``method`` on the periods before each origin and score its next ``horizon`` periods (MASE and RMSSE
    scaled by the seasonal naive error over ``season`` periods)."""
    t0, per_origin, forecast = time.perf_counter(), [], None
    for origin in origins:
        history = values[:, :origin]
        forecast = method(history, dates[:origin], horizon, discount)
        per_origin.append(score(history, values[:, origin : origin + horizon], forecast, season))
    if forecast is None:
        raise ValueError("a backtest needs at least one origin")
    seconds = time.perf_counter() - t0
    metrics = summarize(per_origin) | {"seconds": seconds, "series_per_second": values.shape[0] * len(origins) / seconds}
    return Backtest([dates[o] for o in origins], metrics, forecast)
