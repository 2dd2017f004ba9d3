"""Strong simple recommenders the transformer must beat: (recent) popularity and EASE (Steck, WWW 2019), and
their blend, which is what wins under the temporal protocol when anything beats popularity at all.

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
from ml.recsys.evaluate import Scorer

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


class Blend:
    """A customer's EASE scores (their row scaled to a maximum of 1) mixed with log recent popularity (scaled to
    1): ``personal * ease + (1 - personal) * popularity`` with ``personal = 1 - weight``. Under a time split what
    sells now dominates (the README's temporal rows); EASE adds what each customer's history says about the rest.
    Weight 0 is EASE's ranking, weight 1 recent popularity's.

    With ``idle_half_life``, EASE's share halves with every ``idle_half_life`` days since the customer's last
    purchase (``idle_days``, per row): a customer back after months buys like a new one, what sells now."""

    def __init__(self, ease: Scorer, counts: np.ndarray, weight: float, idle_days: np.ndarray | None = None, idle_half_life: float | None = None):
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"blend weight {weight} is outside [0, 1]")
        if idle_half_life is not None and idle_days is None:
            raise ConfigError("a blend whose EASE share fades with idle time needs each customer's idle days")
        popularity = np.log1p(np.asarray(counts, dtype=np.float32))
        self.ease, self.popularity, self.weight = ease, popularity / max(float(popularity.max()), 1e-9), weight
        self.idle_days, self.idle_half_life = idle_days, idle_half_life

    def personal(self, rows: np.ndarray) -> np.ndarray:
        """EASE's share per row."""
        if self.idle_half_life is None or self.idle_days is None:
            return np.full(len(rows), 1.0 - self.weight, dtype=np.float32)
        return ((1.0 - self.weight) * np.power(0.5, self.idle_days[rows] / self.idle_half_life)).astype(np.float32)

    def score(self, rows: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.ease(rows), dtype=np.float32)
        scale = np.abs(scores).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        personal = self.personal(rows)[:, None]
        return personal * scores / scale + (1 - personal) * self.popularity[None, :]
