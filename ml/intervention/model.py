"""Models: a calibrated purchase propensity (LightGBM + isotonic regression) and uplift learners per coupon
action (T-, X- and S-learner on LightGBM, or ``auto``: the one with the best cross-validated Qini per action),
bundled with the coupon economics into one MLflow pyfunc.

The uplift learners share one interface: ``fit(X, treatment, y)`` with treatment = an action name or control,
then ``predict(X)`` -> the control-arm conversion probability and the uplift of each action."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from ml import contract
from ml.customer_features import FEATURES
from ml.errors import ConfigError
from ml.intervention.evaluate import qini_coefficient

LEARNERS = ("t", "x", "s")
"""T-learner (one model per arm), X-learner (Kuenzel et al. 2019: imputed effects, propensity-weighted), and the
single-model S-learner kept as the baseline the others must beat."""
AUTO = "auto"  # per action, the learner with the best cross-validated Qini on the training rows
KINDS = (*LEARNERS, AUTO)
CV_FOLDS = 3


@dataclass(frozen=True)
class TreeConfig:
    """LightGBM settings; uplift is a small difference of noisy probabilities, so trees stay shallow and leaves large."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 100
    seed: int = 42

    def params(self) -> dict:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "random_state": self.seed,
            "verbose": -1,
            "n_jobs": 2,
        }

    def classifier(self) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(**self.params())

    def regressor(self) -> lgb.LGBMRegressor:
        return lgb.LGBMRegressor(**self.params())


def _p(model: lgb.LGBMClassifier, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(X))[:, 1]


def _arm(treatment: np.ndarray, y: np.ndarray, arm: str) -> np.ndarray:
    mask = treatment == arm
    if mask.sum() == 0 or len(np.unique(y[mask])) < 2:
        raise ConfigError(
            f"uplift arm {arm!r} has {int(mask.sum())} rows and outcomes {sorted(set(y[mask].tolist()))}: "
            "it needs both converted and unconverted customers; use more campaign history"
        )
    return mask


@dataclass
class UpliftLearner:
    """Conversion probability under control and uplift per action, from a randomized campaign history."""

    kind: str
    actions: tuple[str, ...]
    trees: TreeConfig = field(default_factory=TreeConfig)
    models: dict = field(default_factory=dict)
    treated_share: dict = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)  # auto: action -> learner
    cv_qini: dict[str, dict[str, float]] = field(default_factory=dict)  # auto: action -> learner -> mean CV Qini
    members: dict[str, UpliftLearner] = field(default_factory=dict)  # auto: the chosen learners, fitted on all rows

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"uplift learner {self.kind!r} is not one of {KINDS}")

    def fit(self, X: pd.DataFrame, treatment: np.ndarray, y: np.ndarray) -> UpliftLearner:
        treatment, y = np.asarray(treatment), np.asarray(y, dtype=int)
        if self.kind == AUTO:
            self.cv_qini = cross_validated_qini(X, treatment, y, self.actions, self.trees)
            self.chosen = {action: max(scores, key=scores.__getitem__) for action, scores in self.cv_qini.items()}
            self.members = {kind: UpliftLearner(kind, self.actions, self.trees).fit(X, treatment, y) for kind in sorted(set(self.chosen.values()))}
            return self
        control = _arm(treatment, y, contract.CONTROL)
        if self.kind == "s":
            arms = np.asarray(self.actions)[:, None] == treatment[None, :]
            self.models["s"] = self.trees.classifier().fit(self._with_arms(X, arms.T), y)
            return self
        self.models[contract.CONTROL] = self.trees.classifier().fit(X[control], y[control])
        for action in self.actions:
            mine = _arm(treatment, y, action)
            self.models[action] = self.trees.classifier().fit(X[mine], y[mine])
            if self.kind == "x":
                imputed_treated = y[mine] - _p(self.models[contract.CONTROL], X[mine])
                imputed_control = _p(self.models[action], X[control]) - y[control]
                self.models[f"tau1_{action}"] = self.trees.regressor().fit(X[mine], imputed_treated)
                self.models[f"tau0_{action}"] = self.trees.regressor().fit(X[control], imputed_control)
                self.treated_share[action] = float(mine.sum() / (mine.sum() + control.sum()))
        return self

    def _with_arms(self, X: pd.DataFrame, arms: np.ndarray) -> pd.DataFrame:
        return X.assign(**{f"arm_{a}": arms[:, i].astype(float) for i, a in enumerate(self.actions)})

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(P(convert | control), {action: P(convert | action) - P(convert | control)}). The auto learner takes
        P(convert | control) from the member chosen for the most actions."""
        if self.kind == AUTO:
            predicted = {kind: member.predict(X) for kind, member in self.members.items()}
            main = max(self.members, key=lambda kind: list(self.chosen.values()).count(kind))
            return predicted[main][0], {a: predicted[self.chosen[a]][1][a] for a in self.actions}
        if self.kind == "s":
            none = np.zeros((len(X), len(self.actions)))
            p0 = _p(self.models["s"], self._with_arms(X, none))
            uplift = {}
            for i, action in enumerate(self.actions):
                arms = none.copy()
                arms[:, i] = 1
                uplift[action] = _p(self.models["s"], self._with_arms(X, arms)) - p0
            return p0, uplift
        p0 = _p(self.models[contract.CONTROL], X)
        if self.kind == "t":
            return p0, {a: _p(self.models[a], X) - p0 for a in self.actions}
        return p0, {
            a: self.treated_share[a] * self.models[f"tau0_{a}"].predict(X) + (1 - self.treated_share[a]) * self.models[f"tau1_{a}"].predict(X)
            for a in self.actions
        }


def cross_validated_qini(
    X: pd.DataFrame, treatment: np.ndarray, y: np.ndarray, actions: tuple[str, ...], trees: TreeConfig, folds: int = CV_FOLDS
) -> dict[str, dict[str, float]]:
    """Mean Qini coefficient of each learner for each action over ``folds`` folds of the given rows (stratified by
    arm and outcome): what ``auto`` chooses by. Only the rows passed in are read, so a holdout stays unseen."""
    strata = pd.Series(treatment).astype(str) + "/" + pd.Series(y).astype(str)
    scores: dict[str, dict[str, list[float]]] = {a: {kind: [] for kind in LEARNERS} for a in actions}
    for fit_rows, check_rows in StratifiedKFold(folds, shuffle=True, random_state=trees.seed).split(X, strata):
        for kind in LEARNERS:
            _, uplift = UpliftLearner(kind, actions, trees).fit(X.iloc[fit_rows], treatment[fit_rows], y[fit_rows]).predict(X.iloc[check_rows])
            for action in actions:
                mine = np.isin(treatment[check_rows], [action, contract.CONTROL])
                treated = treatment[check_rows][mine] == action
                scores[action][kind].append(qini_coefficient(y[check_rows][mine], uplift[action][mine], treated))
    return {a: {kind: float(np.mean(values)) for kind, values in by_kind.items()} for a, by_kind in scores.items()}


@dataclass
class Propensity:
    """P(purchase within the window): LightGBM ranks, isotonic regression on a later snapshot calibrates."""

    trees: TreeConfig = field(default_factory=TreeConfig)
    model: lgb.LGBMClassifier | None = None
    calibrator: IsotonicRegression | None = None

    def fit(self, X: pd.DataFrame, y: np.ndarray, X_calibration: pd.DataFrame, y_calibration: np.ndarray) -> Propensity:
        for name, labels in (("training", y), ("calibration", y_calibration)):
            if len(np.unique(labels)) < 2:
                raise ConfigError(
                    f"propensity {name} snapshot(s) have only label {np.unique(labels).tolist()}: "
                    "need buyers and non-buyers; use more history or a longer window"
                )
        self.model = self.trees.classifier().fit(X, y)
        self.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(_p(self.model, X_calibration), y_calibration)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.model is None or self.calibrator is None:
            raise RuntimeError("Propensity.predict before fit")
        return self.calibrator.predict(_p(self.model, X))


@dataclass(frozen=True)
class Economics:
    """What one conversion is worth, and what each action costs."""

    value_per_conversion: float  # mean basket at list price of a campaign conversion
    margin: float  # gross margin rate on list price
    discounts: dict[str, float]  # action -> discount rate on the basket
    contact_cost: float = 0.0  # per message sent

    def of(self, p0: np.ndarray, uplift: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(expected incremental profit, expected budget spend), each (customers, actions) in ``discounts`` order.
        Profit counts the discount given to customers who would have bought anyway; spend is the expected
        discount redeemed plus the contact cost."""
        profit, spend = [], []
        for action, depth in self.discounts.items():
            converts = np.clip(p0 + uplift[action], 0, 1)
            basket = self.value_per_conversion
            profit.append(converts * basket * (self.margin - depth) - p0 * basket * self.margin - self.contact_cost)
            spend.append(converts * basket * depth + self.contact_cost)
        return np.column_stack(profit), np.column_stack(spend)


@dataclass
class InterventionModel:
    """Everything the daily plan needs from training: propensity, uplift per action, economics."""

    propensity: Propensity
    uplift: UpliftLearner
    economics: Economics

    @property
    def actions(self) -> tuple[str, ...]:
        return self.uplift.actions

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """customer_id, propensity, p_control and uplift_<action> for each row of :func:`data.customer_features`."""
        X = features[list(FEATURES)]
        p0, uplift = self.uplift.predict(X)
        return pd.DataFrame(
            {"customer_id": features["customer_id"].to_numpy(), "propensity": self.propensity.predict(X), "p_control": p0}
            | {f"uplift_{a}": uplift[a] for a in self.actions}
        )


def pyfunc_model(model: InterventionModel):
    """The bundle as an ``mlflow.pyfunc.PythonModel``: customer feature rows in, scores out."""
    from mlflow.pyfunc import PythonModel

    class InterventionPyfunc(PythonModel):
        def __init__(self, bundle: InterventionModel):
            self.bundle = bundle

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            return self.bundle.score(model_input)

    return InterventionPyfunc(model)
