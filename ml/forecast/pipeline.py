"""ecom_demand_forecast, declared once: train -> backtest beside seasonal naive -> register -> gate -> champion ->
forecast shards (mapped) -> publish ``demand_forecasts``. The DAG, ``ecom forecast`` and the Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.pipeline import (
    FanOut,
    Pipeline,
    PipelineConfig,
    Run,
    model_steps,
    newest_partition,
    option,
    publish_shards,
)

if TYPE_CHECKING:
    from ml.forecast.lgbm import LGBMConfig


@dataclass(frozen=True)
class ForecastConfig(PipelineConfig):
    model: str = option(
        "lgbm", "Forecasting method (ensemble: ETS on smooth series, LightGBM on intermittent ones)", choices=("lgbm", "ets", "seasonal_naive", "ensemble")
    )
    frequency: str = option("auto", "Forecast period: auto (weekly when every sale falls on one weekday), daily or weekly", choices=("auto", "daily", "weekly"))
    horizon: int = option(28, "Days ahead to forecast (weekly: the weeks that cover them)", minimum=1, maximum=365)
    origins: int = option(3, "Rolling backtest origins", minimum=1, maximum=52)
    origin_step: int = option(14, "Days between backtest origins (weekly: rounded up to weeks)", minimum=1, maximum=365)
    history_days: int = option(730, "Days of demand history to use", minimum=28, maximum=3650)
    margin: float = option(0.02, "Relative MASE cut to replace the champion", minimum=0, maximum=0.99)
    ets_baseline: bool = option(False, "Also backtest ETS beside seasonal naive; the gate's bar is the better of the two (slow: ETS fits every series)")
    shards: int = option(2, "Parallel forecasting tasks (by series)", minimum=1, maximum=256)
    lgbm_estimators: int = option(400, "LightGBM: boosting rounds", minimum=1, maximum=10_000)
    lgbm_max_rows: int = option(1_000_000, "LightGBM: most training rows (origins are thinned beyond)", minimum=1)
    seed: int = option(42, "Training seed", minimum=0)

    def lgbm(self) -> LGBMConfig:
        from ml.forecast.lgbm import LGBMConfig

        return LGBMConfig(n_estimators=self.lgbm_estimators, max_rows=self.lgbm_max_rows, seed=self.seed)


def _forecast(run: Run, shard: int, champion: dict[str, Any]) -> dict[str, Any]:
    from ml.forecast import score

    return score.forecast_shard(run.settings, run.ds, shard, run.config, champion["version"])


DEMAND_FORECAST = Pipeline(
    name="forecast",
    dag_id="ecom_demand_forecast",
    doc=__doc__ or "",
    config=ForecastConfig,
    steps=model_steps("ml.forecast.train", evaluate="backtest", items=lambda run: list(range(run.config.shards))),
    fan_out=FanOut("forecast", _forecast),
    publish=publish_shards("ml.forecast.io", "series"),
    outputs=("outputs/demand_forecasts",),
    triggers=("curated/orders", "curated/order_items", "curated/products"),
    default_ds=newest_partition("curated/orders"),
    tags=("forecast",),
)
