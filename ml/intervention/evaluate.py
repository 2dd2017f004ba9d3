"""Evaluation: Qini curves and coefficients for uplift scores, discrimination and calibration for propensity.

The Qini curve is written here (a dozen numpy lines) rather than taken from scikit-uplift: that package has had
no release since 2022 and its metrics call ``sklearn.utils.extmath.stable_cumsum``, which scikit-learn removes in
1.10. The definitions follow scikit-uplift's ``qini_curve``/``qini_auc_score`` (ties grouped, the perfect curve
allowing negative effects), and a test pins them on hand-computed cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


@dataclass(frozen=True)
class QiniCurve:
    targeted: np.ndarray  # customers targeted, 0..n, at each distinct score
    incremental: np.ndarray  # incremental responders: treated responders - control responders x treated/control


def qini_curve(y: np.ndarray, score: np.ndarray, treated: np.ndarray) -> QiniCurve:
    """Target customers by decreasing score; at each distinct score, the treated responders minus the control
    responders scaled to the treated group's size."""
    y, score, treated = (np.asarray(a, dtype=float) for a in (y, score, treated))
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treated = y[order], score[order], treated[order]
    cuts = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    n_treated = np.cumsum(treated)[cuts]
    n_control = np.cumsum(1 - treated)[cuts]
    y_treated = np.cumsum(y * treated)[cuts]
    y_control = np.cumsum(y * (1 - treated))[cuts]
    scaled = np.divide(y_control * n_treated, n_control, out=np.zeros_like(y_control), where=n_control > 0)
    return QiniCurve(np.r_[0.0, cuts + 1.0], np.r_[0.0, y_treated - scaled])


def _area_over_random(curve: QiniCurve) -> float:
    return float(np.trapezoid(curve.incremental, curve.targeted) - curve.targeted[-1] * curve.incremental[-1] / 2)


def qini_coefficient(y: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """Area between the score's Qini curve and the random-targeting line, over the same area for the perfect
    ordering (1 = perfect, 0 = random, negative = worse than random)."""
    y, treated = np.asarray(y, dtype=float), np.asarray(treated, dtype=float)
    perfect = _area_over_random(qini_curve(y, y * treated - y * (1 - treated), treated))
    return _area_over_random(qini_curve(y, score, treated)) / perfect if perfect > 0 else float("nan")


@dataclass(frozen=True)
class PairedComparison:
    mean_difference: float  # model A's metric minus model B's, averaged over the resamples
    low: float  # confidence interval of the mean difference
    high: float
    p_value: float  # two-sided, for "no difference"
    ahead: int  # resamples on which A scored higher
    resamples: int


def compare_on_resamples(a: np.ndarray, b: np.ndarray, test_share: float, confidence: float = 0.95) -> PairedComparison:
    """Paired comparison of two models scored on the same random train/test splits, by the corrected resampled
    t-test (Nadeau & Bengio 2003): the splits overlap, so the plain t-test's variance is inflated by
    (1/J + n_test/n_train) instead of 1/J, which keeps the test from calling noise a win."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2 or not 0 < test_share < 1:
        raise ValueError(f"compare_on_resamples needs at least 2 paired resamples (got {d.size}) and 0 < test_share < 1")
    se = np.sqrt((1 / d.size + test_share / (1 - test_share)) * d.var(ddof=1))
    df = d.size - 1
    half = stats.t.ppf((1 + confidence) / 2, df) * se
    p = 2 * stats.t.sf(abs(d.mean()) / se, df) if se > 0 else float(d.mean() == 0)
    return PairedComparison(float(d.mean()), float(d.mean() - half), float(d.mean() + half), float(p), int((d > 0).sum()), int(d.size))


def propensity_metrics(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """ROC-AUC, PR-AUC (average precision), Brier score, the base rate and the calibration curve."""
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(np.mean(y)),
        "mean_predicted": float(np.mean(p)),
        "calibration": {"predicted": predicted.tolist(), "observed": observed.tolist()},
    }


def _axes(size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _finish(fig, ax, title: str, xlabel: str, ylabel: str):
    import matplotlib.pyplot as plt

    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def qini_plot(curves: dict[str, QiniCurve], title: str):
    """Qini curves of several scorers on one action's holdout, with the random line."""
    fig, ax = _axes((6, 4.5))
    for name, curve in curves.items():
        ax.plot(curve.targeted, curve.incremental, label=name)
    last = next(iter(curves.values()))
    ax.plot([0, last.targeted[-1]], [0, last.incremental[-1]], color="grey", ls="--", label="random")
    return _finish(fig, ax, title, "customers targeted (by decreasing score)", "incremental responders")


def calibration_plot(metrics: dict, title: str):
    """Observed purchase rate against the predicted propensity per quantile bin."""
    fig, ax = _axes((4.5, 4.5))
    cal = metrics["calibration"]
    ax.plot(cal["predicted"], cal["observed"], marker="o", label=f"model (Brier {metrics['brier']:.4f})")
    top = max(max(cal["predicted"]), max(cal["observed"]), 1e-3)
    ax.plot([0, top], [0, top], color="grey", ls="--", label="perfect calibration")
    return _finish(fig, ax, title, "predicted propensity", "observed purchase rate")
