"""A global LightGBM over every series: direct multi-horizon quantile regression (P10/P50/P90 objectives),
with the P10-P90 interval calibrated by split conformal prediction (CQR, Romano et al. 2019): quantile
regression alone under-covers (70% for a nominal 80% on the pharma backtest).

One row per (series, origin, step): demand known at the origin (the last season, the same point of the season in
the last four seasons (one, for weekly data), short and long means, variability, share of zero periods), the
target period's calendar and the step, and, when the
source has promotions, the discount planned for the target day, the one at the origin and the mean of the last
28 days (which explains promotion-lifted lags). Every demand
feature and the target are divided by the series' recent mean level, so one model serves slow and fast movers.
Features use only days before the origin (tested).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.forecast.evaluate import QUANTILES, Forecast

if TYPE_CHECKING:
    import lightgbm as lgb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LGBMConfig:
    season: int = 7  # periods in the seasonal cycle (7 days; 52 weeks)
    seasons_back: int = 4  # same point of the season, this many seasons back
    windows: tuple[int, int] = (7, 28)  # short and long means, in periods
    period_days: int = 1  # 7 for weekly data
    min_history: int = 56  # periods of history a training origin needs
    max_origins: int = 365  # most recent training origins (every day)
    max_rows: int = 1_000_000  # training rows at most: big panels use every n-th origin instead of every day
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    series_feature_limit: int = 2000  # series id as a categorical feature only for panels up to this size
    threads: int = 0  # 0: LightGBM's default (all cores)
    calibration_origins: int = 28  # newest training origins held out to calibrate the interval
    seed: int = 42


def weekly(config: LGBMConfig) -> LGBMConfig:
    """The same settings for weekly data: a 52-week season seen one season back, 4- and 13-week means."""
    return replace(config, season=52, seasons_back=1, windows=(4, 13), period_days=7, min_history=26)


def _levels(history: np.ndarray) -> np.ndarray:
    """Per-series scale: the mean of the last 28 days, else of the last 182, else 1."""
    recent, longer = history[:, -28:].mean(axis=1), history[:, -182:].mean(axis=1)
    return np.where(recent > 0, recent, np.where(longer > 0, longer, 1.0))


def origin_features(
    values: np.ndarray, origin: int, horizon: int, dates: pd.DatetimeIndex, config: LGBMConfig | None = None, discount: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows (series-major, then step) for forecasting periods origin..origin+horizon-1 from the periods
    before ``origin`` (and the promotion calendar ``discount``, planned ahead); returns them and each series'
    level."""
    config = config or LGBMConfig()
    season, (short, long) = config.season, config.windows
    past = values[:, :origin]
    n_series = past.shape[0]
    level = _levels(past)
    scaled = past / level[:, None]
    steps = np.arange(1, horizon + 1)
    target_day = origin + steps - 1
    cols: dict[str, np.ndarray] = {}
    for lag in range(1, season + 1):
        cols[f"lag_{lag}"] = np.repeat(scaled[:, -lag], horizon)
    same_weekday = []
    first_week = (steps + season - 1) // season  # the nearest same point of the season that is already known
    for k in range(config.seasons_back):
        idx = target_day - season * (first_week + k)
        same_weekday.append(scaled[:, idx])
        cols[f"same_weekday_{k + 1}"] = same_weekday[-1].ravel()
    cols["same_weekday_mean"] = np.mean(same_weekday, axis=0).ravel()
    for window in (short, long):
        cols[f"mean_{window}"] = np.repeat(scaled[:, -window:].mean(axis=1), horizon)
    cols[f"std_{long}"] = np.repeat(scaled[:, -long:].std(axis=1), horizon)
    cols[f"zero_share_{long}"] = np.repeat((past[:, -long:] == 0).mean(axis=1), horizon)
    cols["level_log"] = np.repeat(np.log1p(level), horizon)
    days = dates[origin - 1] + pd.to_timedelta(steps * config.period_days, unit="D")
    cols["step"] = np.tile(steps, n_series)
    cols["dow"] = np.tile(days.dayofweek.to_numpy(), n_series)
    cols["dom"] = np.tile(days.day.to_numpy(), n_series)
    cols["month"] = np.tile(days.month.to_numpy(), n_series)
    cols["series"] = np.repeat(np.arange(n_series), horizon)
    if discount is not None:
        known = np.zeros((n_series, origin + horizon), dtype=np.float32)  # no promotion beyond the calendar
        span = min(discount.shape[1], origin + horizon)
        known[:, :span] = discount[:, :span]
        cols["discount_target"] = known[:, origin : origin + horizon].ravel()
        cols["discount_origin"] = np.repeat(known[:, origin - 1], horizon)
        cols[f"discount_mean_{long}"] = np.repeat(known[:, max(0, origin - long) : origin].mean(axis=1), horizon)
    return pd.DataFrame(cols), level


class GlobalLGBM:
    """Three LightGBM quantile models (P10/P50/P90) trained on every series at many origins."""

    def __init__(self, config: LGBMConfig | None = None):
        self.config = config or LGBMConfig()
        self.models: dict[float, lgb.LGBMRegressor] = {}
        self.use_series = False
        self.n_series = 0  # series seen in training: the categories of the series feature
        self.widen = np.zeros(0)  # per step, in level units: added below P10 and above P90
        self.uses_promotions = False

    def fit(self, values: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> GlobalLGBM:
        import lightgbm as lgb

        cfg = self.config
        last = values.shape[1] - horizon  # the newest origin whose targets are all known
        first = max(cfg.min_history, season_span(cfg, horizon), last - cfg.max_origins + 1)
        if last < first:
            raise ValueError(f"{values.shape[1]} periods are too few to train with horizon {horizon} (need {min_days(horizon, cfg)})")
        self.use_series = values.shape[0] <= cfg.series_feature_limit
        self.n_series = values.shape[0]
        self.uses_promotions = discount is not None
        t0 = time.perf_counter()
        stride = max(1, -(-(last - first + 1) * values.shape[0] * horizon // cfg.max_rows))
        rows = [self._rows(values, dates, origin, horizon, discount) for origin in range(first, last + 1)[::-1][::stride][::-1]]
        n_cal = min(cfg.calibration_origins, len(rows) // 3)
        fit_rows, cal_rows = rows[: len(rows) - n_cal], rows[len(rows) - n_cal :]
        X = self._design(pd.concat([r[0] for r in fit_rows], ignore_index=True))
        y = np.concatenate([r[1] for r in fit_rows])
        params: dict[str, Any] = {
            "n_estimators": cfg.n_estimators,
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves,
            "min_child_samples": cfg.min_child_samples,
            "random_state": cfg.seed,
            "verbose": -1,
            "n_jobs": cfg.threads or None,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
        }
        for q in QUANTILES:
            self.models[q] = lgb.LGBMRegressor(objective="quantile", alpha=q, **params).fit(X, y)
        self.widen = self._conformal_widening(cal_rows, horizon)
        log.info(
            "global LightGBM: %d series, %d origins every %d periods (%d for calibration), %d rows, fitted in %.1fs",
            values.shape[0],
            len(rows),
            stride,
            n_cal,
            len(y),
            time.perf_counter() - t0,
        )
        return self

    def _rows(self, values: np.ndarray, dates: pd.DatetimeIndex, origin: int, horizon: int, discount: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray]:
        frame, level = origin_features(values, origin, horizon, dates, self.config, discount)
        return frame, (values[:, origin : origin + horizon] / level[:, None]).ravel()

    def _conformal_widening(self, cal_rows: list, horizon: int, coverage: float = 0.8) -> np.ndarray:
        """Per step, the conformal quantile of max(P10 - y, y - P90) on held-out origins (level units)."""
        if not cal_rows:
            return np.zeros(horizon)
        frame = pd.concat([r[0] for r in cal_rows], ignore_index=True)
        y = np.concatenate([r[1] for r in cal_rows])
        X = self._design(frame)
        lo, hi = (np.asarray(self.models[q].predict(X)) for q in (QUANTILES[0], QUANTILES[-1]))
        scores = np.maximum(lo - y, y - hi)
        steps = frame["step"].to_numpy()
        widen = np.zeros(horizon)
        for step in range(1, horizon + 1):
            s = scores[steps == step]
            level = min(1.0, coverage * (1 + 1 / len(s)))
            widen[step - 1] = np.quantile(s, level)
        return widen

    def _design(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.use_series:
            return frame.assign(series=frame["series"].astype("category"))
        return frame.drop(columns="series")

    def predict(
        self, values: np.ndarray, dates: pd.DatetimeIndex, horizon: int, series: np.ndarray | None = None, discount: np.ndarray | None = None
    ) -> Forecast:
        """P10/P50/P90 for the ``horizon`` periods after the end of ``values`` (monotone, non-negative).
        ``series`` gives each row's position in the training panel (-1: a series the model never saw); by
        default the rows are the training panel's series in order. A model trained with promotions reads
        ``discount`` (no calendar: no promotion planned, logged)."""
        uses_promotions = getattr(self, "uses_promotions", False)  # models pickled before promotions existed
        if uses_promotions and discount is None:
            log.warning("the model was trained with promotion features but got no promotion calendar: assuming none")
            discount = np.zeros((values.shape[0], values.shape[1] + horizon), dtype=np.float32)
        frame, level = origin_features(values, values.shape[1], horizon, dates, self.config, discount if uses_promotions else None)
        X = self._design(frame)
        if self.use_series:
            codes = np.arange(values.shape[0]) if series is None else np.asarray(series)
            X["series"] = pd.Categorical.from_codes(np.repeat(codes, horizon), categories=range(self.n_series))
        raw = np.stack([self.models[q].predict(X) for q in QUANTILES])
        widen = np.tile(self.widen, values.shape[0])
        raw[0], raw[-1] = raw[0] - widen, raw[-1] + widen
        raw = np.sort(np.clip(raw, 0.0, None), axis=0)  # quantile crossing: P10 <= P50 <= P90
        return Forecast(raw.reshape(len(QUANTILES), values.shape[0], horizon) * level[None, :, None])

    def params(self) -> dict:
        return asdict(self.config)


def season_span(config: LGBMConfig, horizon: int) -> int:
    """History an origin needs for the same-point-of-the-season features of every step of the horizon."""
    return config.season * (-(-horizon // config.season) + config.seasons_back - 1)


def min_days(horizon: int, config: LGBMConfig | None = None) -> int:
    """Periods of history ``fit`` needs: one training origin with its features and a full horizon of targets."""
    config = config or LGBMConfig()
    return max(config.min_history, season_span(config, horizon)) + horizon
