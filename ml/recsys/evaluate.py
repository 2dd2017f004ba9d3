"""One evaluation module for every recommender: full ranking against all items, seen items excluded.

A model is any callable ``score(user_rows) -> (len(user_rows), n_items)`` array of scores over items 0..n-1;
evaluation ranks in chunks so memory stays bounded whatever the number of users.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ml.recsys import topk

Scorer = Callable[[np.ndarray], np.ndarray]

CHUNK_ROWS = 128
"""Users scored and ranked at a time when the caller fixes nothing else (and before ``BlockSizer`` has timed any)."""


class BlockSizer:
    """Chooses how many users to score and rank at a time while scoring: the first blocks try each candidate size in
    turn, TRIALS times, and the rest use the one with the least time per user. The results do not depend on it.

    Why not one fixed size: a block small enough to stay in the cache between its matmul and its ranking helps
    where memory is slow, a larger one keeps the matmul efficient where it is not. On 100,000 x 20,000 scores the
    fastest fixed size was 128 rows on one 2-core host, 256 on a second and 512 or 1,024 on a third
    (benchmarks/recsys_scoring.py, README)."""

    CANDIDATES = (128, 256, 512, 1024)
    TRIALS = 2

    def __init__(self) -> None:
        self._trials = [size for _ in range(self.TRIALS) for size in self.CANDIDATES]
        self.seconds_per_row: dict[int, float] = {}

    @property
    def chosen(self) -> int:
        """The fastest size timed so far (CHUNK_ROWS before any)."""
        return min(self.seconds_per_row, key=self.seconds_per_row.__getitem__) if self.seconds_per_row else CHUNK_ROWS

    def next_size(self) -> int:
        return self._trials.pop(0) if self._trials else self.chosen

    def record(self, size: int, rows: int, seconds: float) -> None:
        """A block of ``rows`` users asked for as ``size`` took ``seconds`` (a short last block says nothing)."""
        if rows == size:
            self.seconds_per_row[size] = min(self.seconds_per_row.get(size, float("inf")), seconds / rows)


@dataclass(frozen=True)
class Metrics:
    recall: float
    ndcg: float
    coverage: float
    popularity_bias: float
    k: int
    users: int

    def as_dict(self) -> dict:
        return {
            f"recall_at_{self.k}": self.recall,
            f"ndcg_at_{self.k}": self.ndcg,
            "coverage": self.coverage,
            "popularity_bias": self.popularity_bias,
            "users": self.users,
        }


def top_k(score: Scorer, seen: sp.csr_matrix, k: int, chunk: int | BlockSizer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item columns per user, best first, and their scores, each user's seen items excluded (ranked by
    ``topk.top_k_rows``: ties to the lower item). Users go in blocks of ``chunk`` rows, or of the size a
    ``BlockSizer`` (a fresh one by default) finds fastest."""
    n_users = seen.shape[0]
    sizer = BlockSizer() if chunk is None else chunk
    items = np.empty((n_users, k), dtype=np.int64)
    scores = np.empty((n_users, k), dtype=np.float32)
    start = 0
    while start < n_users:
        size = sizer if isinstance(sizer, int) else sizer.next_size()
        stop = min(start + size, n_users)
        t0 = time.perf_counter()
        block = np.asarray(score(np.arange(start, stop)), dtype=np.float32)
        block = block if block.flags.writeable else block.copy()  # copy only shared arrays
        mask = seen[start:stop]
        block[np.repeat(np.arange(stop - start), np.diff(mask.indptr)), mask.indices] = -np.inf
        items[start:stop], scores[start:stop] = topk.top_k_rows(block, k)
        if isinstance(sizer, BlockSizer):
            sizer.record(size, stop - start, time.perf_counter() - t0)
        start = stop
    return items, scores


def hits(top: np.ndarray, relevant: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The users with something relevant, and for each of them which of their top columns are relevant."""
    sizes = np.array([len(rel) for rel in relevant], dtype=np.int64)
    users = np.flatnonzero(sizes)
    n_columns = int(max(top.max(initial=0), max((rel.max(initial=0) for rel in relevant), default=0))) + 1
    wanted = np.repeat(np.arange(len(relevant)), sizes) * n_columns + (np.concatenate(relevant) if len(users) else np.array([], dtype=np.int64))
    return users, np.isin(users[:, None] * n_columns + top[users], wanted)


def per_user(top: np.ndarray, relevant: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user with something relevant: the user, their Recall@k and NDCG@k (binary relevance, IDCG over
    min(|relevant|, k) hits)."""
    k = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    users, found = hits(top, relevant)
    sizes = np.array([len(relevant[u]) for u in users], dtype=np.int64)
    recall = found.sum(axis=1) / np.maximum(sizes, 1)
    ndcg = (found * discounts).sum(axis=1) / np.cumsum(discounts)[np.minimum(sizes, k) - 1]
    return users, recall, ndcg


def ranking_metrics(top: np.ndarray, relevant: list[np.ndarray], item_popularity: np.ndarray) -> Metrics:
    """Recall@k and NDCG@k (``per_user``, averaged over users), catalogue coverage, and popularity bias: the mean
    popularity percentile of recommended items (0.5 = unbiased, 1 = only hits)."""
    k = top.shape[1]
    users, recall, ndcg = per_user(top, relevant)
    percentile = item_popularity.argsort().argsort() / max(len(item_popularity) - 1, 1)
    recommended = top[users]
    return Metrics(
        recall=float(recall.mean()) if len(users) else float("nan"),
        ndcg=float(ndcg.mean()) if len(users) else float("nan"),
        coverage=float(len(np.unique(recommended)) / len(item_popularity)),
        popularity_bias=float(percentile[recommended].mean()) if len(users) else float("nan"),
        k=k,
        users=len(users),
    )


def recall_curve(top: np.ndarray, relevant: list[np.ndarray]) -> list[float]:
    """Mean Recall@k over users with something relevant, for k = 1..top.shape[1]."""
    users, found = hits(top, relevant)
    sizes = np.array([len(relevant[u]) for u in users], dtype=np.float64)
    return (np.cumsum(found, axis=1) / sizes[:, None]).mean(axis=0).tolist()
