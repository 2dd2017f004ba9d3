"""Strong simple recommenders the transformer must beat: (recent) popularity and EASE (Steck, WWW 2019).

EASE's closed form B = I - P / diag(P), P = (X'X + lambda I)^-1, is one dense inverse of an items x items
matrix: numpy/LAPACK does it well, so no library wraps it for us.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.errors import ConfigError

log = logging.getLogger(__name__)

EASE_MAX_ITEMS = 25_000  # the dense items x items inverse needs 8 * n^2 bytes (5 GB at 25k)


class Popularity:
    """Scores every item by a count (the same list for every user)."""

    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, dtype=np.float32)

    @classmethod
    def from_matrix(cls, train: sp.csr_matrix) -> Popularity:
        """Whole-history popularity: users who interacted with each item."""
        return cls(np.asarray(train.sum(axis=0)).ravel())

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(rows), len(self.counts)))


def recent_counts(events: pd.DataFrame, item_ids: np.ndarray, end: pd.Timestamp, days: int) -> np.ndarray:
    """Interactions per item (in ``item_ids`` order) in the ``days`` before ``end`` (exclusive): what sells now."""
    recent = events[(events["event_ts"] < end) & (events["event_ts"] >= end - pd.Timedelta(days=days))]
    counts = recent["product_id"].value_counts()
    return counts.reindex(pd.Index(item_ids), fill_value=0).to_numpy(dtype=np.float32)


class EASE:
    """Embarrassingly shallow autoencoder: an item-item weight matrix with a zero diagonal."""

    def __init__(self, train: sp.csr_matrix, l2: float = 500.0, weights: np.ndarray | None = None):
        if weights is None:
            weights = self.fit_weights(train, l2)
        self.weights, self.history, self.l2 = weights, train, l2

    @staticmethod
    def fit_weights(train: sp.csr_matrix, l2: float) -> np.ndarray:
        n_items = train.shape[1]
        if n_items > EASE_MAX_ITEMS:
            raise ConfigError(f"EASE needs a dense {n_items} x {n_items} inverse; above {EASE_MAX_ITEMS} items use sasrec")
        t0 = time.perf_counter()
        gram = (train.T @ train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        precision = np.linalg.inv(gram)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices_from(weights)] = 0.0
        log.info("EASE fitted on %d items (l2=%g) in %.1fs", n_items, l2, time.perf_counter() - t0)
        return weights.astype(np.float32)

    def with_history(self, history: sp.csr_matrix) -> EASE:
        """The same item weights applied to other users' histories (scoring after training)."""
        return EASE(history, self.l2, self.weights)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.history[rows] @ self.weights)
