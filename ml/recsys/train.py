"""The production recommender pipeline on the curated lake: fit on everything before a temporal holdout,
evaluate on the holdout beside recent popularity, log to MLflow, register, and gate the champion.

Temporal protocol: the holdout is the last ``holdout_days`` days up to ds; the model never sees them. What is
evaluated is what is registered and served: at scoring time the same model reads customers' full histories.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import registry
from ml.errors import EcomError
from ml.recsys import baselines, data, evaluate, io
from ml.recsys.model import Recommender, pyfunc_model, sasrec_state
from ml.recsys.pipeline import RecsysConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "ecom_recommender"
EXPERIMENT = "ecom_recommendations"
GATE_METRIC = "ndcg_at_10"
REGISTRY_ENTRY = registry.RegistryEntry(EXPERIMENT, MODEL_NAME, GATE_METRIC, higher_is_better=True)


def cutoff(ds: dt.date, holdout_days: int) -> pd.Timestamp:
    """First instant of the holdout: midnight UTC, ``holdout_days - 1`` days before ds."""
    return pd.Timestamp(ds - dt.timedelta(days=holdout_days - 1), tz="UTC")


def load_events(settings: Settings, ds: dt.date, config: RecsysConfig) -> pd.DataFrame:
    return io.load_events(settings, ds, config.history_days, tuple(config.event_types))


def holdout(events: pd.DataFrame, ds: dt.date, config: RecsysConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Train (before the cutoff) and test (cutoff..ds, known customers and products only)."""
    at = cutoff(ds, config.holdout_days)
    train, test = data.temporal_split(events, at)
    if train.empty or test.empty:
        raise EcomError(
            f"events: the temporal holdout at {at.date()} leaves train={len(train)} and test={len(test)} rows; load more history or shorten holdout_days"
        )
    return train, test, at


def fit(train: pd.DataFrame, at: pd.Timestamp, config: RecsysConfig, logger=None) -> tuple[Recommender, dict]:
    """Fit the configured model kind on training events; returns it and training facts (epochs, seconds, the
    blend's weight)."""
    inter = data.from_events(train, tuple(config.event_types))
    common = {
        "item_ids": inter.item_ids,
        "trained_through": (at - pd.Timedelta(microseconds=1)).isoformat(),
        "event_types": tuple(config.event_types),
        "repeat_purchases": config.repeat_purchases,
    }
    if config.model == "popularity":
        counts = baselines.recent_counts(train, inter.item_ids, at, config.popularity_days)
        return Recommender("popularity", state={"counts": counts}, **common), {}
    if config.model in ("ease", "blend"):
        matrix = data.user_item_matrix(inter.sequences, inter.n_items)
        ease = {"weights": baselines.EASE.fit_weights(matrix, config.ease_l2), "l2": config.ease_l2}
        if config.model == "ease":
            return Recommender("ease", state=ease, **common), {}
        setting, validation = blend_setting(train, at, config)
        counts = baselines.recent_counts(train, inter.item_ids, at, config.popularity_days)
        facts = setting.as_dict() | {"validation_ndcg_at_10": validation[setting]}
        return Recommender("blend", state=ease | {"counts": counts} | setting.as_dict(), **common), facts
    from ml.recsys.sasrec import SASRecConfig, train_sasrec

    sasrec = SASRecConfig(max_epochs=config.epochs, patience=config.patience, seed=config.seed)
    net, facts = train_sasrec(data.leave_last_out(inter), sasrec, logger=logger)
    return Recommender("sasrec", state=sasrec_state(net, inter.n_items), **common), facts


BLEND_WEIGHTS = tuple(round(float(w), 1) for w in np.linspace(0.0, 1.0, 11))
"""Popularity weights the blend chooses from: 0 is EASE alone, 1 recent popularity alone."""
QUERY_DECAYS = (1.0, 0.9, 0.7, 0.5)
"""How much less each earlier purchase counts in a customer's EASE query (1: all alike)."""
IDLE_HALF_LIVES = (None, 7.0, 14.0, 30.0, 60.0, 120.0, 240.0)
"""Days of a customer's inactivity that halve EASE's share (None: a fixed share)."""


@dataclass(frozen=True)
class BlendSetting:
    popularity_weight: float
    query_decay: float = 1.0
    idle_half_life: float | None = None

    def as_dict(self) -> dict:
        return {"popularity_weight": self.popularity_weight, "query_decay": self.query_decay, "idle_half_life": self.idle_half_life}


def blend_settings(recency: bool) -> list[BlendSetting]:
    """The grid, simplest first within equal scores: more popularity, then all purchases alike, then a fixed share."""
    decays, half_lives = (QUERY_DECAYS, IDLE_HALF_LIVES) if recency else ((1.0,), (None,))
    return [BlendSetting(w, d, h) for w in reversed(BLEND_WEIGHTS) for d in decays for h in half_lives]


def blend_setting(train: pd.DataFrame, at: pd.Timestamp, config: RecsysConfig) -> tuple[BlendSetting, dict[BlendSetting, float]]:
    """The blend setting with the best NDCG@10 on a validation window: the ``holdout_days`` before ``at``, scored
    by EASE and popularity fitted on what came before it. The holdout after ``at`` is never looked at; ties go to
    the simpler setting (popularity is the simpler model). Returns the setting and every setting's NDCG."""
    valid_at = at - pd.Timedelta(days=config.holdout_days)
    earlier, valid = data.temporal_split(train, valid_at)
    if earlier.empty or valid.empty:
        raise EcomError(
            f"events: the blend's validation window at {valid_at.date()} leaves train={len(earlier)} and validation={len(valid)} rows; "
            "load more history or shorten holdout_days"
        )
    ease, _ = fit(earlier, valid_at, replace(config, model="ease"))
    counts = baselines.recent_counts(earlier, ease.item_ids, valid_at, config.popularity_days)
    problem, ndcg = Holdout.of(ease, earlier, valid), {}
    for setting in blend_settings(config.blend_recency):
        blend = replace(ease, kind="blend", state=ease.state | {"counts": counts} | setting.as_dict())
        ndcg[setting] = problem.metrics(blend, curve_k=10)["ndcg_at_10"]
    chosen = max(ndcg, key=ndcg.__getitem__)
    window = f"{valid_at.date()}..{at.date()}"
    log.info("blend: %s chosen on validation %s (NDCG@10 %.4f; popularity alone %.4f)", chosen, window, ndcg[chosen], ndcg[BlendSetting(1.0)])
    return chosen, ndcg


@dataclass(frozen=True)
class Holdout:
    """What every model is scored against on one holdout: the customers' histories and idle days at the cutoff,
    what each may not be shown, and what they interacted with after it."""

    histories: list[np.ndarray]
    idle_days: np.ndarray
    excluded: sp.csr_matrix
    relevant: list[np.ndarray]
    popularity: np.ndarray

    @classmethod
    def of(cls, model: Recommender, train: pd.DataFrame, test: pd.DataFrame) -> Holdout:
        customers, histories = model.histories(train)
        at = pd.Timestamp(model.trained_through) + pd.Timedelta(microseconds=1)
        return cls(
            histories=histories,
            idle_days=model.idle_days(train, customers, at),
            excluded=model.excluded(histories),
            relevant=data.relevant_items(test[test["event_type"].isin(model.event_types)], customers, model.item_ids),
            popularity=np.asarray(data.user_item_matrix(histories, model.n_items).sum(axis=0)).ravel(),
        )

    def ranked(self, model: Recommender, k: int) -> np.ndarray:
        """Each customer's top-k columns by ``model`` (at most all of its items)."""
        return evaluate.top_k(model.scorer(self.histories, self.idle_days), self.excluded, min(k, model.n_items))[0]

    def summary(self, top: np.ndarray) -> dict:
        """Recall/NDCG@10, coverage, popularity bias, and the Recall@k curve for k = 1..top.shape[1]."""
        metrics = evaluate.ranking_metrics(top[:, :10], self.relevant, self.popularity).as_dict()
        return metrics | {"recall_curve": evaluate.recall_curve(top, self.relevant)}

    def metrics(self, model: Recommender, curve_k: int = 50) -> dict:
        """``summary`` of the model's top ``curve_k``."""
        return self.summary(self.ranked(model, curve_k))


def holdout_metrics(model: Recommender, train: pd.DataFrame, test: pd.DataFrame, curve_k: int = 50) -> dict:
    """Recall/NDCG@10, coverage, popularity bias on the holdout, and the Recall@k curve for k = 1..curve_k."""
    return Holdout.of(model, train, test).metrics(model, curve_k)


def recent_popularity(model: Recommender, train: pd.DataFrame, at: pd.Timestamp, days: int) -> Recommender:
    """The baseline every model is reported beside: what sold in the ``days`` before the cutoff."""
    typed = train[train["event_type"].isin(model.event_types)]
    counts = baselines.recent_counts(typed, model.item_ids, at, days)
    return replace(model, kind="popularity", state={"counts": counts}, _network=None)


def holdout_name(ds: dt.date, at: pd.Timestamp, config: RecsysConfig) -> str:
    return f"temporal {at.date()}..{ds} {'+'.join(config.event_types)}"


def train_run(settings: Settings, ds: dt.date, config: RecsysConfig) -> dict:
    """Train on the data before the holdout and log params, per-epoch metrics and the pyfunc model to a new
    MLflow run; returns the run id and model URI (the ``train`` task, on the gpu queue)."""
    import mlflow

    events = load_events(settings, ds, config)
    train, test, at = holdout(events, ds, config)
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"{config.model} ds={ds}") as run:
        mlflow.log_params(
            {f"recsys.{k}": v for k, v in config.as_dict().items()}
            | {"ds": ds.isoformat(), "holdout": holdout_name(ds, at, config), "train_rows": len(train), "test_rows": len(test)}
        )
        logger = None
        if config.model == "sasrec":
            from pytorch_lightning.loggers import MLFlowLogger

            logger = MLFlowLogger(experiment_name=EXPERIMENT, tracking_uri=settings.mlflow_tracking_uri, run_id=run.info.run_id)
        model, facts = fit(train, at, config, logger)
        numeric = {k: v for k, v in facts.items() if isinstance(v, int | float)}
        mlflow.log_metrics({f"train.{k}": float(v) for k, v in numeric.items()})
        # what is not a number still shows on the run, e.g. the blend's idle_half_life=None (a fixed share)
        mlflow.log_params({f"train.{k}": v for k, v in facts.items() if k not in numeric})
        example = _pyfunc_example(train)
        uri = registry.log_pyfunc_model(
            pyfunc_model(model),
            "model",
            example,
            registry.pip_requirements("scipy", *(("torch", "pytorch-lightning") if config.model == "sasrec" else ())),
            params={"k": 10},
        )
        mlflow.set_tags({"recsys.model": config.model, "recsys.trained_through": model.trained_through})
    log.info("trained %s for ds=%s in run %s (%s items)", config.model, ds, run.info.run_id, model.n_items)
    return {"run_id": run.info.run_id, "model_uri": uri, "ds": ds.isoformat(), "config": config.as_dict()}


def _pyfunc_example(events: pd.DataFrame) -> pd.DataFrame:
    """A few input rows for the signature: MLflow schemas take naive datetimes, so event_ts is naive UTC."""
    example = events[["customer_id", "product_id", "event_ts", "event_type"]].head(20)
    return example.astype({"customer_id": object, "product_id": object, "event_type": object}).assign(
        event_ts=example["event_ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    )


def load_recommender(settings: Settings, uri: str) -> Recommender:
    return registry.load_python_model(settings, uri).recommender


def evaluate_run(settings: Settings, ds: dt.date, trained: dict) -> dict:
    """Evaluate the run's model on its holdout beside recent popularity; log metrics and the Recall@k plot."""
    import mlflow

    config = RecsysConfig.from_params(trained["config"])
    train, test, at = holdout(load_events(settings, ds, config), ds, config)
    model = load_recommender(settings, trained["model_uri"])
    results = {
        "model": holdout_metrics(model, train, test),
        "recent_popularity": holdout_metrics(recent_popularity(model, train, at, config.popularity_days), train, test),
    }
    registry.configure(settings, EXPERIMENT)
    with mlflow.start_run(run_id=trained["run_id"]):
        for who, metrics in results.items():
            prefix = "holdout." if who == "model" else "holdout.recent_popularity."
            mlflow.log_metrics({prefix + k: float(v) for k, v in metrics.items() if k != "recall_curve"})
        mlflow.log_figure(_recall_curve_figure(results, config), "evaluation/recall_at_k.png")
        mlflow.log_dict({k: v for k, v in results.items()}, "evaluation/holdout_metrics.json")
    summary = {who: {k: v for k, v in m.items() if k != "recall_curve"} for who, m in results.items()}
    log.info("holdout %s: %s", holdout_name(ds, at, config), json.dumps(summary))
    return trained | {"holdout": holdout_name(ds, at, config), "metrics": summary}


def _recall_curve_figure(results: dict, config: RecsysConfig):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for who, metrics in results.items():
        curve = metrics["recall_curve"]
        label = f"{config.model if who == 'model' else 'recent popularity'} (NDCG@10 {metrics['ndcg_at_10']:.4f})"
        ax.plot(range(1, len(curve) + 1), curve, label=label)
    ax.set(xlabel="k", ylabel="Recall@k", title="Temporal holdout: Recall@k")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def version_tags(evaluated: dict) -> dict[str, str]:
    """Tags of the registered version beside its ds: model kind and holdout metrics (what a reviewer reads in the registry)."""
    metrics = evaluated["metrics"]
    return {
        "recsys.model": evaluated["config"]["model"],
        **registry.metric_tags("holdout", metrics["model"]),
        f"holdout.recent_popularity.{GATE_METRIC}": repr(metrics["recent_popularity"][GATE_METRIC]),
    }


def gate(settings: Settings, ds: dt.date, registered: dict) -> dict:
    """Champion gate: promote when NDCG@10 beats the champion's on this same holdout by the margin. The
    champion is re-measured on it; one that trained on part of it (a backfill for an older ds) is not compared
    and keeps its alias, with the reason on the new version."""
    config = RecsysConfig.from_params(registered["config"])

    def champion_ndcg(uri: str) -> float:
        champion = load_recommender(settings, uri)
        train, test, at = holdout(load_events(settings, ds, config), ds, config)
        if pd.Timestamp(champion.trained_through) >= at:
            raise registry.NotComparable(
                f"the champion ({uri}) trained on data through {champion.trained_through}, inside this holdout ({registered['holdout']})"
            )
        return holdout_metrics(champion, train, test)[GATE_METRIC]

    popularity = registered["metrics"]["recent_popularity"][GATE_METRIC]
    baseline = registry.Baseline(f"recent popularity ({config.popularity_days} days)", popularity, lambda: serve_popularity(settings, ds, config, registered))
    return registry.gate_run(settings, REGISTRY_ENTRY, registered, registered["metrics"]["model"][GATE_METRIC], config.margin, champion_ndcg, baseline)


def serve_popularity(settings: Settings, ds: dt.date, config: RecsysConfig, registered: dict) -> str:
    """Register recent popularity as measured on the holdout (counts before its cutoff, the challenger's
    catalogue) as a version of the recommender: served when no model beats it."""
    train, _, at = holdout(load_events(settings, ds, config), ds, config)
    baseline = recent_popularity(load_recommender(settings, registered["model_uri"]), train, at, config.popularity_days)
    return registry.register_baseline(
        settings,
        REGISTRY_ENTRY,
        ds.isoformat(),
        "recent_popularity",
        pyfunc_model(baseline),
        _pyfunc_example(train),
        registry.pip_requirements("scipy"),
        {"recsys.model": "popularity", "recsys.trained_through": baseline.trained_through},
    )
