"""The risk model on the curated lake: LightGBM on order features with labels matured by ds (chargebacks and
abuse reports), an IsolationForest beside it, evaluated on the newest matured days (PR-AUC, recall at the review
budget) next to the rules baseline, logged to MLflow, registered, and promoted only when its PR-AUC beats the rules
baseline and the champion on the same holdout by the margin (else the rules baseline is served)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from ml import registry
from ml.errors import EcomError
from ml.risk import data, evaluate, io
from ml.risk.model import RiskModel, RulesModel, pyfunc_model
from ml.risk.pipeline import RiskConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = EXPERIMENT = "ecom_risk"
GATE_METRIC = "pr_auc"
REGISTRY_ENTRY = registry.RegistryEntry(EXPERIMENT, MODEL_NAME, GATE_METRIC, higher_is_better=True)


def known_at(ds: dt.date) -> pd.Timestamp:
    """Everything reported through the end of ds is known to a run for ds."""
    return pd.Timestamp(ds + dt.timedelta(days=1), tz="UTC")


def training_days(ds: dt.date, config: RiskConfig) -> list[pd.Timestamp]:
    """The days whose orders are old enough for their labels to have matured by ds."""
    last = pd.Timestamp(ds - dt.timedelta(days=config.label_maturity_days), tz="UTC")
    return list(pd.date_range(last - pd.Timedelta(days=config.train_days), last - pd.Timedelta(days=1), freq="D"))


def labelled_rows(tables: dict[str, pd.DataFrame], ds: dt.date, config: RiskConfig) -> pd.DataFrame:
    """Feature rows of the training days, labelled with what was reported by the end of ds; ``holdout`` marks the
    newest ``holdout_days``."""
    days = training_days(ds, config)
    rows = data.order_features(tables["orders"], tables["items"], tables["customers"], days)
    rows["label"] = rows["order_id"].isin(data.labels_as_of(tables["chargebacks"], known_at(ds))).astype(int)
    rows["holdout"] = rows["order_ts"].dt.floor("D") >= days[-config.holdout_days]
    return rows


def scores_on(model, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.score(rows), dtype=float)


def holdout_report(model, rows: pd.DataFrame, config: RiskConfig) -> dict[str, float]:
    test = rows[rows["holdout"]]
    return evaluate.holdout_metrics(test["order_ts"].dt.floor("D").to_numpy(), test["label"].to_numpy(), scores_on(model, test), config.review_budget)


def fit(rows: pd.DataFrame, config: RiskConfig) -> RiskModel:
    train = rows[~rows["holdout"]]
    return RiskModel(config.trees(), config.anomaly_weight).fit(train, train["label"].to_numpy())


def train_run(settings: Settings, ds: dt.date, config: RiskConfig) -> dict:
    """Build the labelled rows (kept in the features zone for the gate), fit, evaluate on the held-out days beside
    the rules baseline and the IsolationForest alone, and log everything to a new MLflow run."""
    import mlflow

    days = training_days(ds, config)
    tables = io.load_tables(settings, (days[0] - pd.Timedelta(days=data.GRAPH_DAYS)).date(), ds)
    rows = labelled_rows(tables, ds, config)
    train, test = rows[~rows["holdout"]], rows[rows["holdout"]]
    if train["label"].sum() < config.min_labels or test["label"].sum() == 0:
        raise EcomError(
            f"risk: {int(train['label'].sum())} matured fraud/abuse labels in the training days and {int(test['label'].sum())} in the holdout "
            f"({days[0].date()}..{days[-1].date()}, labels reported through {ds}); need at least min_labels={config.min_labels} and one: "
            "land more history with chargebacks, or lower min_labels"
        )
    io.write_training_set(settings, ds, rows)
    model = fit(rows, config)
    rules = RulesModel(model.value_threshold)
    metrics = {
        "model": holdout_report(model, rows, config),
        "rules": holdout_report(rules, rows, config),
        "isolation_forest": evaluate.holdout_metrics(
            test["order_ts"].dt.floor("D").to_numpy(), test["label"].to_numpy(), model.anomaly(test), config.review_budget
        ),
    }
    holdout = f"orders of {days[-config.holdout_days].date()}..{days[-1].date()} ({len(test)} orders, {int(test['label'].sum())} labelled), labels through {ds}"
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"risk ds={ds}") as run:
        mlflow.log_params(
            {f"risk.{k}": v for k, v in config.as_dict().items()}
            | {"ds": ds.isoformat(), "train_orders": len(train), "train_labels": int(train["label"].sum())}
        )
        mlflow.log_metrics({f"{who}.{k}": v for who, figures in metrics.items() for k, v in figures.items() if np.isfinite(v)})
        mlflow.log_dict(metrics | {"holdout": holdout}, "evaluation/metrics.json")
        uri = registry.log_pyfunc_model(
            pyfunc_model(model), "model", rows[["order_id", *data.FEATURES]].head(5), registry.pip_requirements("lightgbm", "scikit-learn")
        )
    log.info(
        "risk model through %s: PR-AUC %.3f (rules %.3f, IsolationForest %.3f), recall at %d a day %.3f on %s",
        ds,
        metrics["model"]["pr_auc"],
        metrics["rules"]["pr_auc"],
        metrics["isolation_forest"]["pr_auc"],
        config.review_budget,
        metrics["model"]["recall_at_budget"],
        holdout,
    )
    return {"run_id": run.info.run_id, "model_uri": uri, "ds": ds.isoformat(), "config": config.as_dict(), "metrics": metrics, "holdout": holdout}


def version_tags(trained: dict) -> dict[str, str]:
    """The holdout figures of the model and of the rules baseline, as tags a reviewer reads in the registry."""
    metrics = trained["metrics"]
    return registry.metric_tags("model", metrics["model"]) | registry.metric_tags("rules", metrics["rules"])


def load_model(settings: Settings, uri: str) -> RiskModel | RulesModel:
    return registry.load_python_model(settings, uri).bundle


def gate(settings: Settings, ds: dt.date, registered: dict) -> dict:
    """Promote when the holdout PR-AUC beats the rules baseline and the champion (re-measured on the same rows) by
    the margin; when nothing beats the rules, they are registered and served."""
    config = RiskConfig.from_params(registered["config"])
    rows = io.read_training_set(settings, ds)

    def champion_pr_auc(uri: str) -> float:
        return holdout_report(load_model(settings, uri), rows, config)["pr_auc"]

    rules = registered["metrics"]["rules"]

    def serve_rules() -> str:
        model = RulesModel(data.value_threshold(rows[~rows["holdout"]]))
        example = rows[["order_id", *data.FEATURES]].head(5)
        return registry.register_baseline(
            settings, REGISTRY_ENTRY, ds.isoformat(), "rules", pyfunc_model(model), example, registry.pip_requirements("scikit-learn"), {}
        )

    baseline = registry.Baseline("rules (new account and order value above the 99th percentile)", rules[GATE_METRIC], serve_rules)
    return registry.gate_run(settings, REGISTRY_ENTRY, registered, registered["metrics"]["model"][GATE_METRIC], config.gate_margin, champion_pr_auc, baseline)
