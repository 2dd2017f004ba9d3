"""Statistical baselines: seasonal naive and ETS (statsmodels), each giving P10/P50/P90.

Seasonal naive repeats the last week; its quantiles add the empirical quantiles of its own in-sample errors at
the same number of weeks ahead. ETS is fitted per series (additive error and weekly seasonality, damped trend
optional by AICc) and its interval comes from the model; series are spread over worker processes.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from ml.forecast.evaluate import QUANTILES, Forecast
from ml.parallel import process_pool

log = logging.getLogger(__name__)


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 7, window: int = 182) -> Forecast:
    """Last season repeated, with quantiles from the in-sample errors of the same forecast (last ``window`` days)."""
    n_series, n_days = history.shape
    steps = np.arange(horizon)
    point = history[:, n_days - season + steps % season]
    values = np.empty((len(QUANTILES), n_series, horizon))
    recent = history[:, -window:]
    for weeks in range(1, (horizon - 1) // season + 2):
        lag = weeks * season
        errors = recent[:, lag:] - recent[:, :-lag] if recent.shape[1] > lag else np.zeros((n_series, 1))
        cols = steps[(steps // season) + 1 == weeks]
        for qi, q in enumerate(QUANTILES):
            offset = 0.0 if q == 0.5 else np.quantile(errors, q, axis=1)[:, None]
            values[qi][:, cols] = point[:, cols] + offset
    return Forecast(np.clip(values, 0.0, None))


def _ets_one(args: tuple[np.ndarray, int, int]) -> np.ndarray:
    """P10/P50/P90 (3 x horizon) of the better (AICc) of ETS(A,N,A) and ETS(A,Ad,A); seasonal naive if both fail."""
    y, horizon, season = args
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    series = pd.Series(y)  # statsmodels 0.15 get_prediction needs an index on the data

    best, best_aicc = None, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trend in (None, "add"):
            try:
                fit = ETSModel(series, error="add", trend=trend, damped_trend=trend is not None, seasonal="add", seasonal_periods=season).fit(
                    disp=False, maxiter=200
                )
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(fit.aicc) and fit.aicc < best_aicc:
                best, best_aicc = fit, fit.aicc
        if best is None:
            return seasonal_naive(y[None, :], horizon, season).values[:, 0, :]
        frame = best.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(alpha=0.2)
    out = np.vstack([frame["pi_lower"], frame["mean"], frame["pi_upper"]])
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, None)


def ets(history: np.ndarray, horizon: int, season: int = 7, workers: int | None = None) -> Forecast:
    """ETS per series in parallel processes (``workers`` default: all cores)."""
    workers = workers or os.cpu_count() or 1
    jobs = [(row, horizon, season) for row in history]
    if workers == 1 or len(jobs) < 4:
        results = [_ets_one(job) for job in jobs]
    else:
        with process_pool(workers) as pool:
            results = list(pool.map(_ets_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    return Forecast(np.stack(results, axis=1))
