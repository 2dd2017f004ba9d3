"""The registered forecaster: one of the methods (seasonal naive, ETS, global LightGBM) with whatever it learned,
as an MLflow pyfunc model whose input is daily demand rows and whose output is P10/P50/P90 rows.

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
from ml.forecast import baselines
from ml.forecast.data import Panel, from_long
from ml.forecast.evaluate import Forecast, Method
from ml.forecast.lgbm import GlobalLGBM, LGBMConfig

KINDS = ("lgbm", "ets", "seasonal_naive")
FORECAST_COLUMNS = ("product_id", "warehouse_id", "target_date", "p10", "p50", "p90")


def method(kind: str, lgbm: LGBMConfig | None = None) -> Method:
    """The fit-and-forecast function of a model kind, as the backtest calls it."""

    def seasonal_naive(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return baselines.seasonal_naive(history, horizon)

    def ets(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return baselines.ets(history, horizon)

    def global_lgbm(history: np.ndarray, dates: pd.DatetimeIndex, horizon: int, discount: np.ndarray | None = None) -> Forecast:
        return GlobalLGBM(lgbm).fit(history, dates, horizon, discount).predict(history, dates, horizon, discount=discount)

    methods: dict[str, Method] = {"seasonal_naive": seasonal_naive, "ets": ets, "lgbm": global_lgbm}
    if kind in methods:
        return methods[kind]
    raise ConfigError(f"forecast model {kind!r} is not one of {KINDS}")


@dataclass
class Forecaster:
    kind: str
    horizon: int
    trained_through: str  # last day of the training data (ISO date)
    lgbm_config: dict = field(default_factory=dict)
    lgbm: GlobalLGBM | None = None
    keys: pd.DataFrame | None = None  # product_id, warehouse_id of the training panel (LightGBM)

    @classmethod
    def fit(cls, kind: str, panel: Panel, horizon: int, lgbm_config: LGBMConfig | None = None) -> Forecaster:
        if kind not in KINDS:
            raise ConfigError(f"forecast model {kind!r} is not one of {KINDS}")
        config = lgbm_config or LGBMConfig()
        common: dict[str, Any] = {"kind": kind, "horizon": horizon, "trained_through": str(panel.dates[-1].date()), "lgbm_config": dataclasses.asdict(config)}
        if kind != "lgbm":
            return cls(**common)
        return cls(**common, lgbm=GlobalLGBM(config).fit(panel.values, panel.dates, horizon, panel.discount), keys=panel.keys.copy())

    def method(self) -> Method:
        """The same method with the same settings (to backtest this forecaster's recipe on other origins)."""
        return method(self.kind, LGBMConfig(**self.lgbm_config))

    def forecast(self, panel: Panel) -> Forecast:
        """P10/P50/P90 for the ``horizon`` days after the panel's last day."""
        if self.kind != "lgbm":
            return self.method()(panel.values, panel.dates, self.horizon, panel.discount)
        trained = pd.MultiIndex.from_frame(self.keys)
        if self.lgbm is None:
            raise RuntimeError("a LightGBM forecaster without its model")
        codes = trained.get_indexer(pd.MultiIndex.from_frame(panel.keys[["product_id", "warehouse_id"]]))
        return self.lgbm.predict(panel.values, panel.dates, self.horizon, series=codes, discount=panel.discount)

    def forecast_rows(self, panel: Panel) -> pd.DataFrame:
        """``forecast`` as rows ``FORECAST_COLUMNS``, one per series and target day."""
        fc = self.forecast(panel)
        targets = pd.date_range(panel.dates[-1] + pd.Timedelta(days=1), periods=self.horizon, freq="D")
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
    """An ``mlflow.pyfunc.PythonModel`` around the forecaster: daily demand rows in, quantile rows out."""
    from mlflow.pyfunc import PythonModel

    class ForecastModel(PythonModel):
        def __init__(self, forecaster: Forecaster):
            self.forecaster = forecaster

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            rows = self.forecaster.forecast_rows(from_long(model_input))
            return rows.assign(target_date=pd.to_datetime(rows["target_date"]))

    return ForecastModel(forecaster)
