"""The registered forecaster: one of the methods (seasonal naive, ETS, global LightGBM, or the ensemble of the
last two) with whatever it learned, as an MLflow pyfunc model whose input is demand rows per period (day or week)
and whose output is P10/P50/P90 rows.

Seasonal naive and ETS fit per series at prediction time (their "training" is the method and its settings);
the global LightGBM carries its boosters and the series it was trained on, so a product it never saw is still
forecast (the series feature is then unknown) and a known one keeps its learned identity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.errors import ConfigError
from ml.forecast import baselines, ensemble
from ml.forecast.data import DAILY, WEEKLY, Frequency, Panel, frequency_of, from_long
from ml.forecast.evaluate import Forecast, Method
from ml.forecast.lgbm import GlobalLGBM, LGBMConfig, weekly

KINDS = ("lgbm", "ets", "seasonal_naive", "ensemble")
WITH_LGBM = ("lgbm", "ensemble")  # kinds that carry fitted boosters
FORECAST_COLUMNS = ("product_id", "warehouse_id", "target_date", "p10", "p50", "p90")


def lgbm_config(config: LGBMConfig | None, frequency: Frequency) -> LGBMConfig:
    """``config`` with the season, windows and calendar step of ``frequency``."""
    config = config or LGBMConfig()
    return weekly(config) if frequency == WEEKLY else config


def method(kind: str, lgbm: LGBMConfig | None = None, frequency: Frequency = DAILY) -> Method:
    """The fit-and-forecast function of a model kind for data of ``frequency``, as the backtest calls it."""
    season, config = frequency.season, lgbm_config(lgbm, frequency)

    def seasonal_naive(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return baselines.seasonal_naive(history, horizon, season)

    def ets(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return baselines.ets(history, horizon, season)

    def lightgbm(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return GlobalLGBM(config).fit(history, dates, horizon, discount).predict(history, dates, horizon, discount=discount)

    def ets_and_lightgbm(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        boundary = ensemble.choose_boundary(history, dates, horizon, season, config, discount)
        return ensemble.forecast(lightgbm(history, dates, horizon, discount), history, horizon, season, boundary.zero_share)

    methods: dict[str, Method] = {"seasonal_naive": seasonal_naive, "ets": ets, "lgbm": lightgbm, "ensemble": ets_and_lightgbm}
    if kind in methods:
        return methods[kind]
    raise ConfigError(f"forecast model {kind!r} is not one of {KINDS}")


@dataclass
class Forecaster:
    kind: str
    horizon: int  # periods
    trained_through: str  # last day of the training data (ISO date)
    lgbm_config: dict = field(default_factory=dict)
    lgbm: GlobalLGBM | None = None
    keys: pd.DataFrame | None = None  # product_id, warehouse_id of the training panel (LightGBM)
    frequency: str = DAILY.name  # the period of the panels it reads and of its forecasts
    boundary: ensemble.Boundary | None = None  # the ensemble's: which series go to ETS

    @classmethod
    def fit(cls, kind: str, panel: Panel, horizon: int, config: LGBMConfig | None = None) -> Forecaster:
        """Fit ``kind`` on the panel to forecast ``horizon`` periods of the panel's frequency."""
        if kind not in KINDS:
            raise ConfigError(f"forecast model {kind!r} is not one of {KINDS}")
        config = lgbm_config(config, panel.frequency)
        common: dict[str, Any] = {
            "kind": kind,
            "horizon": horizon,
            "trained_through": str(panel.dates[-1].date()),
            "lgbm_config": dataclasses.asdict(config),
            "frequency": panel.frequency.name,
        }
        if kind not in WITH_LGBM:
            return cls(**common)
        fitted = {"lgbm": GlobalLGBM(config).fit(panel.values, panel.dates, horizon, panel.discount), "keys": panel.keys.copy()}
        if kind == "ensemble":
            fitted["boundary"] = ensemble.choose_boundary(panel.values, panel.dates, horizon, panel.frequency.season, config, panel.discount)
        return cls(**common, **fitted)

    def method(self) -> Method:
        """The same method with the same settings (to backtest this forecaster's recipe on other origins)."""
        return method(self.kind, LGBMConfig(**self.lgbm_config), frequency_of(self.frequency))

    def forecast(self, panel: Panel) -> Forecast:
        """P10/P50/P90 for the ``horizon`` periods after the panel's last one."""
        if panel.frequency.name != self.frequency:
            raise ConfigError(f"a {self.frequency} forecaster cannot read a {panel.frequency.name} demand panel")
        if self.kind not in WITH_LGBM:
            return self.method()(panel.values, panel.dates, self.horizon, panel.discount)
        trained = pd.MultiIndex.from_frame(self.keys)
        if self.lgbm is None:
            raise RuntimeError("a LightGBM forecaster without its model")
        codes = trained.get_indexer(pd.MultiIndex.from_frame(panel.keys[["product_id", "warehouse_id"]]))
        forecast = self.lgbm.predict(panel.values, panel.dates, self.horizon, series=codes, discount=panel.discount)
        if self.kind == "ensemble":
            if self.boundary is None:
                raise RuntimeError("an ensemble forecaster without its class boundary")
            return ensemble.forecast(forecast, panel.values, self.horizon, panel.frequency.season, self.boundary.zero_share)
        return forecast

    def forecast_rows(self, panel: Panel) -> pd.DataFrame:
        """``forecast`` as rows ``FORECAST_COLUMNS``, one per series and target day."""
        fc = self.forecast(panel)
        period = panel.frequency.offset()
        targets = pd.date_range(panel.dates[-1] + period, periods=self.horizon, freq=period)
        n = panel.n_series
        return pd.DataFrame(
            {
                "product_id": np.repeat(panel.keys["product_id"].to_numpy(dtype=object), self.horizon),
                "warehouse_id": np.repeat(panel.keys["warehouse_id"].to_numpy(dtype=object), self.horizon),
                "target_date": np.tile(targets.date, n),
                "p10": fc.values[0].ravel(),
                "p50": fc.values[1].ravel(),
                "p90": fc.values[2].ravel(),
            }
        )


def pyfunc_model(forecaster: Forecaster):
    """An ``mlflow.pyfunc.PythonModel`` around the forecaster: demand rows per period in, quantile rows out."""
    from mlflow.pyfunc import PythonModel

    class ForecastModel(PythonModel):
        def __init__(self, forecaster: Forecaster):
            self.forecaster = forecaster

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            rows = self.forecaster.forecast_rows(from_long(model_input, frequency_of(self.forecaster.frequency)))
            return rows.assign(target_date=pd.to_datetime(rows["target_date"]))

    return ForecastModel(forecaster)
