"""Risk metrics on a temporal holdout: PR-AUC, and recall when each day's review budget goes to the highest scores."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (the area under the precision-recall curve); NaN without a positive."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores)) if labels.sum() else float("nan")


def flagged(days: np.ndarray, scores: np.ndarray, budget: int) -> np.ndarray:
    """The orders a team reviewing ``budget`` orders a day checks: each day's highest scores."""
    out = np.zeros(len(scores), dtype=bool)
    for day in np.unique(days):
        rows = np.flatnonzero(days == day)
        out[rows[np.argsort(-scores[rows], kind="stable")[:budget]]] = True
    return out


def recall_at_budget(days: np.ndarray, labels: np.ndarray, scores: np.ndarray, budget: int) -> float:
    """Share of the abusive orders among those flagged within the daily budget."""
    return float(labels[flagged(days, scores, budget)].sum() / labels.sum()) if labels.sum() else float("nan")


def budget_ceiling(days: np.ndarray, labels: np.ndarray, budget: int) -> float:
    """The best recall any ranking could reach within the daily budget (incidents come in bursts: a day with more
    abusive orders than the budget cannot be caught whole)."""
    frame = pd.DataFrame({"day": days, "y": labels})
    return float(frame.groupby("day")["y"].sum().clip(upper=budget).sum() / labels.sum()) if labels.sum() else float("nan")


def holdout_metrics(days: np.ndarray, labels: np.ndarray, scores: np.ndarray, budget: int) -> dict[str, float]:
    return {
        "pr_auc": pr_auc(labels, scores),
        "recall_at_budget": recall_at_budget(days, labels, scores, budget),
        "budget_ceiling": budget_ceiling(days, labels, budget),
        "positives": float(labels.sum()),
        "orders": float(len(labels)),
    }
