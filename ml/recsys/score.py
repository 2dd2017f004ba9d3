"""Batch scoring: top-K products for every customer, seen items excluded, in bounded-memory chunks, written to
the ``recommendations`` serving table (one ds replaced atomically) and to the lake's outputs zone."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import lake, serving
from ml.recsys import evaluate
from ml.settings import Settings

log = logging.getLogger(__name__)

TABLE = "recommendations"


class EmbeddingScorer:
    """Scores as dot products of user and item vectors: what a factorization or a sequence model exports."""

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray):
        self.users = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.items_t = np.ascontiguousarray(np.asarray(item_vectors, dtype=np.float32).T)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.users[rows] @ self.items_t


def recommend(score: evaluate.Scorer, seen: sp.csr_matrix, k: int = 100, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item columns and scores per user; logs the rate."""
    t0 = time.perf_counter()
    k = min(k, seen.shape[1])
    items, scores = evaluate.top_k(score, seen, k, chunk)
    elapsed = time.perf_counter() - t0
    log.info("scored %d customers x %d products (top %d) in %.1fs: %.0f customers/s",
             seen.shape[0], seen.shape[1], k, elapsed, seen.shape[0] / max(elapsed, 1e-9))
    return items, scores


def to_frame(ds: str, customer_ids: np.ndarray, product_ids: np.ndarray, items: np.ndarray, scores: np.ndarray,
             model_name: str, model_version: str) -> pd.DataFrame:
    """Rows of the contract ``recommendations(ds, customer_id, rank, product_id, score, model_name, model_version)``;
    slots with no candidate left (every product seen) are dropped."""
    n_users, k = items.shape
    frame = pd.DataFrame({
        "ds": lake.as_date(ds).isoformat(),
        "customer_id": np.repeat(np.asarray(customer_ids), k),
        "rank": np.tile(np.arange(1, k + 1), n_users),
        "product_id": np.asarray(product_ids)[items.ravel()],
        "score": scores.ravel(),
        "model_name": model_name,
        "model_version": str(model_version),
    })
    return frame[np.isfinite(frame["score"])].reset_index(drop=True)


def write(settings: Settings, ds: str, frame: pd.DataFrame) -> int:
    """Replace the ds in the lake's outputs zone and in the serving store; returns rows written."""
    lake.write_partition(settings.lake_dir, "outputs", TABLE, ds, frame)
    return serving.replace_ds(settings.serving_url, TABLE, ds, frame)
