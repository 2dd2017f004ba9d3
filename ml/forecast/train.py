"""The production forecast pipeline on the curated lake: fit the chosen method on the demand through ds, backtest
it beside seasonal naive on rolling origins, log metrics and fan charts to MLflow, register, and gate the champion
on backtest MASE (lower is better), never worse than the best baseline on WRMSSE or pinball loss.

The gate compares methods, not fitted artifacts: the champion's recipe (kind and settings) is refitted at the
same origins on the same panel, so both figures come from the same backtest and neither saw its test days.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TypeGuard

import numpy as np

from ml import registry
from ml.errors import EcomError
from ml.forecast import data, evaluate, io, lgbm, model
from ml.forecast.model import Forecaster, method, pyfunc_model
from ml.forecast.pipeline import ForecastConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "ecom_demand_forecaster"
EXPERIMENT = "ecom_demand_forecast"
GATE_METRIC = "mase"
GUARD_METRICS = ("wrmsse", "pinball")
REGISTRY_ENTRY = registry.RegistryEntry(EXPERIMENT, MODEL_NAME, GATE_METRIC, higher_is_better=False)
FAN_CHART_SERIES = 6


def horizon(panel: data.Panel, config: ForecastConfig) -> int:
    """The configured horizon (days) in the panel's periods."""
    return panel.frequency.periods(config.horizon)


def origins(panel: data.Panel, config: ForecastConfig, kind: str | None = None) -> list[int]:
    """Backtest origins (period indices) for ``kind`` (default: the configured model); a clear error when the
    history cannot hold them."""
    kind, frequency, periods = kind or config.model, panel.frequency, horizon(panel, config)
    try:
        found = evaluate.rolling_origins(panel.values.shape[1], periods, config.origins, frequency.periods(config.origin_step), frequency.season)
        needed = lgbm.min_days(periods, model.lgbm_config(None, frequency))
        if kind in model.WITH_LGBM and found[0] < needed:
            raise ValueError(f"the first origin has {found[0]} {frequency.unit}s of history, LightGBM needs {needed}")
    except ValueError as exc:
        raise EcomError(
            f"{frequency.name} demand history {panel.dates[0].date()}..{panel.dates[-1].date()} ({len(panel.dates)} {frequency.unit}s) is "
            f"too short for the {kind} backtest: {exc}; load more history, or lower horizon, origins or origin_step"
        ) from exc
    return found


def holdout_name(panel: data.Panel, config: ForecastConfig) -> str:
    days = [panel.dates[o].date() for o in origins(panel, config)]
    unit, step = panel.frequency.unit[0], panel.frequency.periods(config.origin_step)
    return f"backtest h={horizon(panel, config)}{unit} origins {days[0]}..{days[-1]} every {step}{unit}, series through {panel.dates[-1].date()}"


def train_run(settings: Settings, ds: dt.date, config: ForecastConfig) -> dict:
    """Fit the configured method on the demand through ds and log params and the pyfunc model to a new MLflow run."""
    import mlflow

    panel = io.load_panel(settings, ds, config.history_days, config.frequency)
    origins(panel, config)  # fail before training when the history cannot hold the backtest
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"{config.model} ds={ds}") as run:
        mlflow.log_params(
            {f"forecast.{k}": v for k, v in config.as_dict().items()}
            | {"ds": ds.isoformat(), "series": panel.n_series, "periods": len(panel.dates), "period": panel.frequency.name}
        )
        forecaster = Forecaster.fit(config.model, panel, horizon(panel, config), config.lgbm())
        example = data.to_long(panel.rows(np.arange(1)))  # one series, not all
        uri = registry.log_pyfunc_model(pyfunc_model(forecaster), "model", example, registry.pip_requirements("lightgbm", "statsmodels"))
        mlflow.set_tags({"forecast.model": config.model, "forecast.frequency": forecaster.frequency, "forecast.trained_through": forecaster.trained_through})
    log.info("fitted %s on %d %s series through %s in run %s", config.model, panel.n_series, panel.frequency.name, ds, run.info.run_id)
    return {"run_id": run.info.run_id, "model_uri": uri, "ds": ds.isoformat(), "config": config.as_dict()}


def load_forecaster(settings: Settings, uri: str) -> Forecaster:
    return registry.load_python_model(settings, uri).forecaster


def backtest(panel: data.Panel, kind: str, forecaster_method: evaluate.Method, config: ForecastConfig) -> evaluate.Backtest:
    periods = horizon(panel, config)
    return evaluate.backtest(panel.values, panel.dates, forecaster_method, periods, origins(panel, config, kind), panel.discount, panel.frequency.season)


BASELINE_NAMES = {"seasonal_naive": "seasonal naive", "ets": "ETS"}


def baselines_of(config: ForecastConfig) -> tuple[str, ...]:
    """The simple methods backtested beside the model: seasonal naive always, ETS when asked."""
    return ("seasonal_naive", "ets") if config.ets_baseline else ("seasonal_naive",)


def strongest_baseline(metrics: dict[str, dict[str, float]]) -> tuple[str, float]:
    """The baseline with the lowest backtest MASE among those in ``metrics`` (the gate's bar)."""
    kind = min((k for k in BASELINE_NAMES if k in metrics), key=lambda k: metrics[k][GATE_METRIC])
    return kind, metrics[kind][GATE_METRIC]


def _defined(value: float | None) -> TypeGuard[float]:
    """A metric that was measured: WRMSSE is undefined (NaN, null after XCom) on windows without sales."""
    return value is not None and bool(np.isfinite(value))


def guards(metrics: dict[str, dict[str, float | None]]) -> tuple[registry.Guard, ...]:
    """The other headline metrics (WRMSSE, pinball): the model must be no worse on each than the best baseline
    (a metric undefined for the model or for every baseline guards nothing)."""
    out = []
    for metric in GUARD_METRICS:
        measured = {k: v for k in BASELINE_NAMES if k in metrics and _defined(v := metrics[k][metric])}
        candidate = metrics["model"][metric]
        if measured and _defined(candidate):
            kind = min(measured, key=measured.__getitem__)
            out.append(registry.Guard(metric, candidate, measured[kind], BASELINE_NAMES[kind]))
    return tuple(out)


def evaluate_run(settings: Settings, ds: dt.date, trained: dict) -> dict:
    """Backtest the run's method beside seasonal naive (and ETS when asked); log metrics, the ratio to naive and
    fan charts."""
    import mlflow

    config = ForecastConfig.from_params(trained["config"])
    panel = io.load_panel(settings, ds, config.history_days, config.frequency)
    forecaster = load_forecaster(settings, trained["model_uri"])
    results = {"model": backtest(panel, forecaster.kind, forecaster.method(), config)}
    results |= {kind: backtest(panel, kind, method(kind, frequency=panel.frequency), config) for kind in baselines_of(config)}
    metrics = {who: r.metrics for who, r in results.items()}
    naive = metrics["seasonal_naive"]["mase"]
    # undefined (NaN, null in XCom) when seasonal naive is perfect or unscored, e.g. on windows without sales
    metrics["model"]["mase_vs_seasonal_naive"] = metrics["model"]["mase"] / naive if naive > 0 else float("nan")
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_id=trained["run_id"]):
        for who, values in metrics.items():
            prefix = "backtest." if who == "model" else f"backtest.{who}."
            mlflow.log_metrics({prefix + k: float(v) for k, v in values.items() if np.isfinite(v)})
        mlflow.log_figure(fan_chart(panel, results, config), "evaluation/fan_chart.png")
        mlflow.log_dict(metrics | {"origins": [str(o.date()) for o in results["model"].origins]}, "evaluation/backtest.json")
    name = holdout_name(panel, config)
    log.info(
        "%s: %s MASE %.3f (%.3fx seasonal naive), P10-P90 coverage %.1f%%",
        name,
        config.model,
        metrics["model"]["mase"],
        metrics["model"]["mase_vs_seasonal_naive"],
        100 * metrics["model"]["coverage_p10_p90"],
    )
    return trained | {"holdout": name, "metrics": metrics, "frequency": panel.frequency.name}


def fan_chart(panel: data.Panel, results: dict[str, evaluate.Backtest], config: ForecastConfig):
    """The newest origin's P10-P90 band and P50 against the actuals, for the highest-volume series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = panel.dates.get_loc(results["model"].origins[-1])
    top = np.argsort(-panel.values[:, :origin].sum(axis=1))[:FAN_CHART_SERIES]
    fig, axes = plt.subplots(len(top), 1, figsize=(8, 2.2 * len(top)), sharex=True, squeeze=False)
    periods, shown = horizon(panel, config), 8 * panel.frequency.season
    past = panel.dates[max(0, origin - shown) : origin]
    future = panel.dates[origin : origin + periods]
    for ax, row in zip(axes[:, 0], top, strict=True):
        fc = results["model"].last.values[:, row, :]
        ax.plot(past, panel.values[row, max(0, origin - shown) : origin], color="black", lw=1, label="history")
        ax.plot(future, panel.values[row, origin : origin + periods], color="black", lw=1, ls="--", label="actual")
        ax.fill_between(future, fc[0], fc[2], alpha=0.3, label="P10-P90")
        ax.plot(future, fc[1], label=f"{config.model} P50")
        ax.plot(future, results["seasonal_naive"].last.values[1, row, :], lw=1, alpha=0.7, label="seasonal naive")
        key = panel.keys.iloc[row]
        ax.set_title(f"{key['product_id']} @ {key['warehouse_id']}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=5, loc="upper left")
    fig.suptitle(f"Backtest origin {future[0].date()}: {periods}-{panel.frequency.unit} fan chart")
    fig.tight_layout()
    plt.close(fig)
    return fig


def version_tags(evaluated: dict) -> dict[str, str]:
    """Tags of the registered version beside its ds: model kind and backtest metrics (what a reviewer reads in the registry)."""
    metrics = evaluated["metrics"]
    return {
        "forecast.model": evaluated["config"]["model"],
        "forecast.frequency": evaluated["frequency"],
        **registry.metric_tags("backtest", metrics["model"]),
        "backtest.seasonal_naive.mase": repr(metrics["seasonal_naive"]["mase"]),
        **({"backtest.ets.mase": repr(metrics["ets"]["mase"])} if "ets" in metrics else {}),
    }


def gate(settings: Settings, ds: dt.date, registered: dict) -> dict:
    """Champion gate: promote when the backtest MASE is below the strongest baseline's and the champion recipe's on
    the same origins by the margin, and the WRMSSE and pinball loss are no worse than the best baseline's."""
    config = ForecastConfig.from_params(registered["config"])

    def champion_mase(uri: str) -> float:
        champion = load_forecaster(settings, uri)
        panel = io.load_panel(settings, ds, config.history_days, config.frequency)
        if champion.frequency != panel.frequency.name:
            raise registry.NotComparable(f"the champion ({uri}) forecasts {champion.frequency} demand, the candidate {panel.frequency.name}")
        try:
            return backtest(panel, champion.kind, champion.method(), config).metrics[GATE_METRIC]
        except EcomError as exc:
            raise registry.NotComparable(f"the champion ({uri}, {champion.kind}) cannot be backtested here: {exc}") from exc

    kind, value = strongest_baseline(registered["metrics"])
    baseline = registry.Baseline(BASELINE_NAMES[kind], value, lambda: serve_baseline(settings, ds, config, kind), guards(registered["metrics"]))
    return registry.gate_run(settings, REGISTRY_ENTRY, registered, registered["metrics"]["model"][GATE_METRIC], config.margin, champion_mase, baseline)


def serve_baseline(settings: Settings, ds: dt.date, config: ForecastConfig, kind: str) -> str:
    """Register the baseline method ``kind`` over the demand through ds as a version of the forecaster: served
    when no model beats it."""
    panel = io.load_panel(settings, ds, config.history_days, config.frequency)
    forecaster = Forecaster.fit(kind, panel, horizon(panel, config))
    example = data.to_long(panel.rows(np.arange(1)))
    return registry.register_baseline(
        settings,
        REGISTRY_ENTRY,
        ds.isoformat(),
        kind,
        pyfunc_model(forecaster),
        example,
        registry.pip_requirements("statsmodels"),
        {"forecast.model": kind, "forecast.frequency": forecaster.frequency, "forecast.trained_through": forecaster.trained_through},
    )
