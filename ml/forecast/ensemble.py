"""The ensemble of ETS and the global LightGBM: each series goes to the member that suits its demand class.

ETS's mean forecast and model interval serve smooth, high-volume series (they dominate the volume-weighted RMSSE
and the pinball loss); LightGBM's quantile P50 serves intermittent series (MASE is a mean over series, most of
them intermittent). The class boundary is the share of zero periods in the last CLASS_WINDOW periods. It is chosen
on a validation window, the ``horizon`` periods before the origin, when the history can fit LightGBM there; else
it is the Syntetos-Boylan cut-off. Blending the two members' quantiles within a class, and choosing per series on
the validation window, both did worse on the backtest (README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.forecast import baselines, evaluate, lgbm
from ml.forecast.evaluate import Forecast

log = logging.getLogger(__name__)

# Syntetos-Boylan-Croston: demand is intermittent when the average interval between sales is 1.32 periods or
# more, i.e. when at least 1 - 1/1.32 of the periods have no sale.
SBC_ZERO_SHARE = 1 - 1 / 1.32
ZERO_SHARES = (0.1, 0.2, SBC_ZERO_SHARE, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # the boundaries tried on validation
CLASS_WINDOW = 28  # recent periods that classify a series
HEADLINE = ("mase", "wrmsse", "pinball")


def smooth(history: np.ndarray, zero_share: float) -> np.ndarray:
    """Per series, whether fewer than ``zero_share`` of its last CLASS_WINDOW periods had no sale."""
    return (history[:, -CLASS_WINDOW:] == 0).mean(axis=1) < zero_share


def combine(lightgbm: Forecast, ets: Forecast, chosen: np.ndarray) -> Forecast:
    """LightGBM's quantiles, with ETS's for the ``chosen`` series (``ets`` covers exactly those, in order)."""
    values = lightgbm.values.copy()
    values[:, chosen] = ets.values
    return Forecast(values)


@dataclass(frozen=True)
class Boundary:
    """The zero share below which a series goes to ETS, and how it was chosen."""

    zero_share: float
    chosen_on: str  # "validation <first day>..<last day>" or "SBC cut-off (...)"


def choose_boundary(
    history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, season: int, config: lgbm.LGBMConfig, discount: np.ndarray | None = None
) -> Boundary:
    """The boundary that scores best on the last ``horizon`` periods of the history, fitting both members before
    them: the sum over MASE, WRMSSE and pinball of each figure relative to the best member's."""
    origin = history.shape[1] - horizon
    if origin < max(lgbm.min_days(horizon, config), 2 * horizon, season + 1):
        return Boundary(SBC_ZERO_SHARE, f"SBC cut-off ({history.shape[1]} periods are too few for a validation window)")
    past, actual = history[:, :origin], history[:, origin:]
    members = {
        "lgbm": lgbm.GlobalLGBM(config).fit(past, dates[:origin], horizon, discount).predict(past, dates[:origin], horizon, discount=discount),
        "ets": baselines.ets(past, horizon, season),
    }
    alone = [evaluate.summarize([evaluate.score(past, actual, fc, season)]) for fc in members.values()]
    best = {m: min(metrics[m] for metrics in alone) for m in HEADLINE}

    def relative(zero_share: float) -> float:
        chosen = smooth(past, zero_share)
        blend = combine(members["lgbm"], Forecast(members["ets"].values[:, chosen]), chosen)
        metrics = evaluate.summarize([evaluate.score(past, actual, blend, season)])
        return sum(metrics[m] / best[m] for m in HEADLINE if best[m] > 0)

    scores = {share: relative(share) for share in ZERO_SHARES}
    zero_share = min(scores, key=lambda share: scores[share])
    shown = {f"{share:.2f}": round(score, 3) for share, score in scores.items()}
    log.info("ensemble: series with under %.0f%% zero periods go to ETS (validation scores %s)", 100 * zero_share, shown)
    return Boundary(zero_share, f"validation {dates[origin].date()}..{dates[-1].date()}")


def forecast(lightgbm: Forecast, history: np.ndarray, horizon: int, season: int, zero_share: float) -> Forecast:
    """The ensemble's forecast from LightGBM's: ETS is fitted on the smooth series only."""
    chosen = smooth(history, zero_share)
    if not chosen.any():
        return lightgbm
    return combine(lightgbm, baselines.ets(history[chosen], horizon, season), chosen)
