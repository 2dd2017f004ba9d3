"""The production intervention models on the curated lake: a calibrated 7-day purchase propensity (temporal
split over weekly snapshots) and coupon uplift per action (temporal split over campaigns), logged to MLflow with
Qini and calibration plots, registered as one pyfunc, and promoted only when the mean Qini coefficient on the
held-out campaigns beats the champion's recipe refitted on the same split by the margin."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from ml import contract, registry
from ml.customer_features import FEATURES
from ml.intervention import data, evaluate, io
from ml.intervention.data import Tables
from ml.intervention.model import (
    AUTO,
    Economics,
    InterventionModel,
    Propensity,
    UpliftLearner,
    pyfunc_model,
)
from ml.intervention.pipeline import InterventionConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "ecom_intervention"
EXPERIMENT = "ecom_intervention"
BENCHMARK_EXPERIMENT = "ecom_intervention_benchmarks"  # the benchmarks' figures and Qini plots, beside the training runs
GATE_METRIC = "qini"
REGISTRY_ENTRY = registry.RegistryEntry(EXPERIMENT, MODEL_NAME, GATE_METRIC, higher_is_better=True)


def action_moment(ds: dt.date) -> pd.Timestamp:
    """The actions chosen for ds are sent the next morning, with everything through ds known."""
    return pd.Timestamp(ds + dt.timedelta(days=1), tz="UTC")


def snapshot_days(ds: dt.date, config: InterventionConfig) -> list[pd.Timestamp]:
    """Propensity snapshots whose purchase windows have closed by the end of ds."""
    return data.snapshot_days(action_moment(ds) - pd.Timedelta(days=config.window_days), config.snapshots)


def load_tables(settings: Settings, ds: dt.date, config: InterventionConfig, first_as_of: pd.Timestamp | None = None) -> Tables:
    """The tables features at ``first_as_of`` (default: the action moment) and later need."""
    return io.load_tables(settings, ds, first_as_of or action_moment(ds), config.lookback_days, config.campaign_history_days)


def fit(config: InterventionConfig, propensity_rows: pd.DataFrame, campaign_train: pd.DataFrame, economics: Economics) -> InterventionModel:
    """Propensity on all snapshots but the last two (isotonic calibration on the second last); uplift on the
    training campaigns."""
    days = sorted(propensity_rows["as_of"].unique())
    train, calibration = propensity_rows[propensity_rows["as_of"].isin(days[:-2])], propensity_rows[propensity_rows["as_of"] == days[-2]]
    X = list(FEATURES)
    propensity = Propensity(config.trees()).fit(train[X], train["label"].to_numpy(), calibration[X], calibration["label"].to_numpy())
    uplift = UpliftLearner(config.learner, config.actions, config.trees()).fit(
        campaign_train[X], campaign_train["treatment"].to_numpy(), campaign_train["converted"].astype(int).to_numpy()
    )
    return InterventionModel(propensity, uplift, economics)


def qini_by_action(learner: UpliftLearner, holdout: pd.DataFrame) -> dict[str, float]:
    """Qini coefficient of each action's uplift score on the holdout rows of that action and of control."""
    _, uplift = learner.predict(holdout[list(FEATURES)])
    out = {}
    for action in learner.actions:
        rows = holdout["treatment"].isin([action, contract.CONTROL]).to_numpy()
        out[action] = evaluate.qini_coefficient(
            holdout["converted"].astype(int).to_numpy()[rows], uplift[action][rows], holdout["treatment"].to_numpy()[rows] == action
        )
    return out


def random_qini(holdout: pd.DataFrame, actions: tuple[str, ...], draws: int = 20, seed: int = 0) -> float:
    """Mean Qini coefficient of random scores over ``draws`` (the floor every model must clear)."""
    rng = np.random.default_rng(seed)
    values = []
    for action in actions:
        rows = holdout["treatment"].isin([action, contract.CONTROL]).to_numpy()
        y, treated = holdout["converted"].astype(int).to_numpy()[rows], holdout["treatment"].to_numpy()[rows] == action
        values += [evaluate.qini_coefficient(y, rng.random(rows.sum()), treated) for _ in range(draws)]
    return float(np.mean(values))


def build_datasets(tables: Tables, ds: dt.date, config: InterventionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(propensity snapshot rows, campaign rows), both with features and labels."""
    propensity_rows = data.propensity_set(tables, snapshot_days(ds, config), config.window_days, config.lookback_days)
    return propensity_rows, data.campaign_set(tables, config.actions, config.lookback_days)


def economics_of(tables: Tables, campaign_train: pd.DataFrame, config: InterventionConfig) -> Economics:
    margin = config.margin if config.margin is not None else data.gross_margin(tables.products, tables.items)
    discounts = dict(zip(config.actions, config.discounts, strict=True))
    return Economics(data.value_per_conversion(campaign_train, discounts), margin, discounts, config.contact_cost)


def train_run(settings: Settings, ds: dt.date, config: InterventionConfig) -> dict:
    """Build the datasets through ds (kept in the features zone for the gate), fit, evaluate on the held-out
    snapshot and campaigns beside the S-learner and random targeting, and log everything to a new MLflow run."""
    import mlflow

    tables = load_tables(settings, ds, config, first_as_of=snapshot_days(ds, config)[0])
    propensity_rows, campaign_rows = build_datasets(tables, ds, config)
    io.write_training_sets(settings, ds, propensity_rows, campaign_rows)
    campaign_train, holdout = data.split_campaigns(campaign_rows, config.holdout_campaigns)
    bundle = fit(config, propensity_rows, campaign_train, economics_of(tables, campaign_train, config))
    test = propensity_rows[propensity_rows["as_of"] == propensity_rows["as_of"].max()]
    metrics = {
        "propensity": evaluate.propensity_metrics(test["label"].to_numpy(), bundle.propensity.predict(test[list(FEATURES)])),
        "uplift": qini_by_action(bundle.uplift, holdout),
    }
    metrics["uplift"][GATE_METRIC] = float(np.mean(list(metrics["uplift"].values())))
    # what auto chose per action, and the cross-validated Qini it chose by (empty for a fixed learner)
    metrics["uplift_choice"] = {"chosen": bundle.uplift.chosen, "cv_qini": bundle.uplift.cv_qini}
    if bundle.uplift.kind == AUTO:
        log.info("auto uplift learner: %s (cross-validated Qini on the training campaigns: %s)", bundle.uplift.chosen, bundle.uplift.cv_qini)
    shown = {f"{config.learner}-learner": bundle.uplift}
    if config.learner != "s":
        single = UpliftLearner("s", config.actions, config.trees()).fit(
            campaign_train[list(FEATURES)], campaign_train["treatment"].to_numpy(), campaign_train["converted"].astype(int).to_numpy()
        )
        metrics["uplift"]["s_learner_qini"] = float(np.mean(list(qini_by_action(single, holdout).values())))
        shown["s-learner (baseline)"] = single
    metrics["uplift"]["random_qini"] = random_qini(holdout, config.actions)
    holdout_name = holdout_of(holdout, ds)
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"{config.learner}-learner ds={ds}") as run:
        mlflow.log_params(
            {f"intervention.{k}": v for k, v in config.as_dict().items()}
            | {
                "ds": ds.isoformat(),
                "campaign_rows": len(campaign_rows),
                "propensity_rows": len(propensity_rows),
                "value_per_conversion": bundle.economics.value_per_conversion,
                "margin": bundle.economics.margin,
            }
        )
        scalar = {f"propensity.{k}": v for k, v in metrics["propensity"].items() if k != "calibration"}
        mlflow.log_metrics(scalar | {f"uplift.{k}": v for k, v in metrics["uplift"].items() if np.isfinite(v)})
        mlflow.set_tags(choice_tags(metrics["uplift_choice"]))
        mlflow.log_figure(
            evaluate.calibration_plot(metrics["propensity"], f"7-day purchase propensity, snapshot {test['as_of'].max().date()}"), "evaluation/calibration.png"
        )
        for action in config.actions:
            mlflow.log_figure(qini_figure(shown, holdout, action), f"evaluation/qini_{action}.png")
        mlflow.log_dict(metrics | {"holdout": holdout_name}, "evaluation/metrics.json")
        uri = registry.log_pyfunc_model(
            pyfunc_model(bundle), "model", campaign_rows[["customer_id", *FEATURES]].head(5), registry.pip_requirements("lightgbm", "scikit-learn")
        )
    log.info(
        "intervention models through %s: propensity ROC-AUC %.3f; uplift Qini %.4f (S-learner %s, random %.4f) on %s",
        ds,
        metrics["propensity"]["roc_auc"],
        metrics["uplift"][GATE_METRIC],
        metrics["uplift"].get("s_learner_qini", "-"),
        metrics["uplift"]["random_qini"],
        holdout_name,
    )
    return {"run_id": run.info.run_id, "model_uri": uri, "ds": ds.isoformat(), "config": config.as_dict(), "metrics": metrics, "holdout": holdout_name}


def holdout_of(holdout: pd.DataFrame, ds: dt.date) -> str:
    ids = sorted(holdout["campaign_id"].unique())
    return f"campaigns {', '.join(ids)} ({len(holdout)} rows), features through {ds}"


def qini_figure(learners: dict[str, UpliftLearner], holdout: pd.DataFrame, action: str):
    """The Qini curves of several learners for one action on the held-out campaigns."""
    rows = holdout[holdout["treatment"].isin([action, contract.CONTROL])]
    y, treated = rows["converted"].astype(int).to_numpy(), rows["treatment"].to_numpy() == action
    curves = {name: evaluate.qini_curve(y, learner.predict(rows[list(FEATURES)])[1][action], treated) for name, learner in learners.items()}
    return evaluate.qini_plot(curves, f"Qini, {action} vs control on held-out campaigns")


def choice_tags(choice: dict[str, dict]) -> dict[str, str]:
    """``intervention.chosen.<action>`` (the learner auto chose) and ``uplift.cv_qini.<action>.<learner>`` (the
    cross-validated Qini on the training campaigns it chose by)."""
    chosen = {f"intervention.chosen.{action}": kind for action, kind in choice["chosen"].items()}
    return chosen | {f"uplift.cv_qini.{action}.{kind}": repr(v) for action, by_kind in choice["cv_qini"].items() for kind, v in by_kind.items()}


def version_tags(trained: dict) -> dict[str, str]:
    """Tags of the registered version beside its ds: learner (and what auto chose, with the cross-validated Qini it
    chose by) and holdout metrics (what a reviewer reads in the registry)."""
    metrics = trained["metrics"]
    return {
        "intervention.learner": trained["config"]["learner"],
        **choice_tags(metrics["uplift_choice"]),
        **registry.metric_tags("uplift", metrics["uplift"]),
        "propensity.roc_auc": repr(metrics["propensity"]["roc_auc"]),
    }


def load_bundle(settings: Settings, uri: str) -> InterventionModel:
    return registry.load_python_model(settings, uri).bundle


def gate(settings: Settings, ds: dt.date, registered: dict) -> dict:
    """Champion gate: promote when the mean Qini on the held-out campaigns beats the champion's recipe, refitted
    on the same training campaigns, by the margin."""
    config = InterventionConfig.from_params(registered["config"])

    def champion_qini(uri: str) -> float:
        champion = load_bundle(settings, uri).uplift
        if champion.actions != config.actions:
            raise registry.NotComparable(f"the champion ({uri}) scores actions {list(champion.actions)}, not {list(config.actions)}")
        rows = io.read_campaign_rows(settings, ds)
        train, holdout = data.split_campaigns(rows, config.holdout_campaigns)
        refit = UpliftLearner(champion.kind, champion.actions, champion.trees).fit(
            train[list(FEATURES)], train["treatment"].to_numpy(), train["converted"].astype(int).to_numpy()
        )
        return float(np.mean(list(qini_by_action(refit, holdout).values())))

    return registry.gate_run(settings, REGISTRY_ENTRY, registered, registered["metrics"]["uplift"][GATE_METRIC], config.gate_margin, champion_qini)
