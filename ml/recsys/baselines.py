"""Strong simple recommenders the transformer must beat: popularity and EASE (Steck, WWW 2019).

EASE's closed form B = I - P / diag(P), P = (X'X + lambda I)^-1, is one dense inverse of an items x items
matrix: numpy/LAPACK does it well, so no library wraps it for us.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


class Popularity:
    """Scores every item by its interaction count in the training data (the same list for every user)."""

    def __init__(self, train: sp.csr_matrix):
        self.counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float32)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(rows), len(self.counts)))


class EASE:
    """Embarrassingly shallow autoencoder: an item-item weight matrix with a zero diagonal."""

    def __init__(self, train: sp.csr_matrix, l2: float = 500.0):
        t0 = time.perf_counter()
        gram = (train.T @ train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        precision = np.linalg.inv(gram)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)
        self.train = train
        log.info("EASE fitted on %d items (l2=%g) in %.1fs", gram.shape[0], l2, time.perf_counter() - t0)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.train[rows] @ self.weights)
