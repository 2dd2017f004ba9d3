"""The risk model: a supervised LightGBM on the order features, an unsupervised IsolationForest beside it for
patterns without labels yet, and the reasons behind a score (LightGBM's per-feature contributions, in words)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.risk.data import FEATURES, FLAGS, REASONS, rules_score, value_threshold


@dataclass(frozen=True)
class RiskTrees:
    """LightGBM settings of the supervised model."""

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 10
    seed: int = 42


def anomaly_rank(detector, medians: pd.Series, features: pd.DataFrame, reference: np.ndarray) -> np.ndarray:
    """The IsolationForest's anomaly score as the share of the training orders that are less anomalous (0..1)."""
    raw = -detector.score_samples(features[list(FEATURES)].fillna(medians).to_numpy())
    return np.searchsorted(reference, raw, side="right") / len(reference)


class RiskModel:
    """Fit on labelled orders; ``score`` is the supervised probability blended with the anomaly rank by
    ``anomaly_weight`` (0: supervised only), so unlabelled new patterns still rise."""

    def __init__(self, trees: RiskTrees, anomaly_weight: float):
        self.trees = trees
        self.anomaly_weight = anomaly_weight
        self.classifier: Any = None  # lightgbm.LGBMClassifier once fitted
        self.detector: Any = None  # sklearn.ensemble.IsolationForest once fitted
        self.medians: pd.Series | None = None
        self.reference: np.ndarray | None = None
        self.value_threshold = float("nan")

    def fit(self, features: pd.DataFrame, labels: np.ndarray) -> RiskModel:
        import lightgbm as lgb
        from sklearn.ensemble import IsolationForest

        X = features[list(FEATURES)]
        positives = max(int(labels.sum()), 1)
        self.classifier = lgb.LGBMClassifier(
            n_estimators=self.trees.n_estimators,
            learning_rate=self.trees.learning_rate,
            num_leaves=self.trees.num_leaves,
            min_child_samples=self.trees.min_child_samples,
            # rare positives: weigh them up to a tenth of the negatives' total, no more (probabilities stay ordered)
            scale_pos_weight=max(1.0, 0.1 * (len(labels) - positives) / positives),
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.trees.seed,
            verbose=-1,
        ).fit(X, labels)
        self.medians = X.median()
        filled = X.fillna(self.medians).to_numpy()
        self.detector = IsolationForest(n_estimators=200, random_state=self.trees.seed).fit(filled)
        self.reference = np.sort(-self.detector.score_samples(filled))
        self.value_threshold = value_threshold(features)
        return self

    def supervised(self, features: pd.DataFrame) -> np.ndarray:
        assert self.classifier is not None, "fit the model first"
        return self.classifier.predict_proba(features[list(FEATURES)])[:, 1]

    def anomaly(self, features: pd.DataFrame) -> np.ndarray:
        assert self.detector is not None and self.medians is not None and self.reference is not None, "fit the model first"
        return anomaly_rank(self.detector, self.medians, features, self.reference)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        supervised = self.supervised(features)
        if self.anomaly_weight == 0:
            return supervised
        # the 8th power keeps the anomaly rank's contribution to its top tail: rank 0.99 adds 0.92 x weight, rank 0.5 adds 0.004
        return (1 - self.anomaly_weight) * supervised + self.anomaly_weight * self.anomaly(features) ** 8

    def reasons(self, features: pd.DataFrame, top: int = 3) -> list[str]:
        """The ``top`` features that raised each order's score most (LightGBM's ``pred_contrib``), in words."""
        assert self.classifier is not None, "fit the model first"
        contributions = self.classifier.predict(features[list(FEATURES)], pred_contrib=True)[:, : len(FEATURES)]
        values = features[list(FEATURES)].to_numpy()
        order = np.argsort(-contributions, axis=1)[:, :top]
        out = []
        for row, picks in enumerate(order):
            words = dict.fromkeys(_phrase(FEATURES[j], values[row, j]) for j in picks if contributions[row, j] > 0)
            out.append("; ".join(w for w in words if w) or "no feature raised the score")
        return out


class RulesModel:
    """The rules baseline as a servable model: a new account (under 7 days) and an order value above the 99th
    percentile of the training orders."""

    def __init__(self, value_threshold: float):
        self.value_threshold = value_threshold

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return rules_score(features, self.value_threshold)

    def reasons(self, features: pd.DataFrame, top: int = 3) -> list[str]:
        flagged = self.score(features) > 0
        return [
            f"new account ({age:.0f} days) and order value {value:.0f} above {self.value_threshold:.0f}" if hit else "no rule matched"
            for hit, age, value in zip(flagged, features["account_age_days"], features["order_value"], strict=True)
        ]


def pyfunc_model(model: RiskModel | RulesModel):
    """The model as an ``mlflow.pyfunc.PythonModel``: order feature rows in, scores and reasons out."""
    from mlflow.pyfunc import PythonModel

    class RiskPyfunc(PythonModel):
        def __init__(self, bundle: RiskModel | RulesModel):
            self.bundle = bundle

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            return pd.DataFrame({"order_id": model_input["order_id"], "score": self.bundle.score(model_input), "reasons": self.bundle.reasons(model_input)})

    return RiskPyfunc(model)


NO_HISTORY = {"value_vs_history": "first order on the account", "previous_ship_distance_km": "first order on the account"}


def _phrase(feature: str, value: float) -> str:
    if np.isnan(value):
        return NO_HISTORY.get(feature, f"{feature.replace('_', ' ')} unknown")
    if feature in FLAGS:
        return REASONS[feature] if value >= 0.5 else ""
    return REASONS[feature].format(value)
