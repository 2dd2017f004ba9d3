"""One evaluation module for every recommender: full ranking against all items, seen items excluded.

A model is any callable ``score(user_rows) -> (len(user_rows), n_items)`` array of scores over items 0..n-1;
evaluation ranks in chunks so memory stays bounded whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ml.recsys import topk

Scorer = Callable[[np.ndarray], np.ndarray]

CHUNK_ROWS = 128
"""Users scored and ranked at a time. A block this small (10 MB at 20,000 items) is still in the cache when it is
ranked right after its matmul; on a host that reads memory at 8 GB/s, 100,000 x 20,000 scores took 2.94 s in chunks
of 128 rows, 3.51 s of 256 and 3.60 s of 2,048 (median of 3, same process; benchmarks/recsys_scoring.py)."""


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


def top_k(score: Scorer, seen: sp.csr_matrix, k: int, chunk: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item columns per user, best first, and their scores, each user's seen items excluded (ranked by
    ``topk.top_k_rows``: ties to the lower item)."""
    n_users = seen.shape[0]
    items = np.empty((n_users, k), dtype=np.int64)
    scores = np.empty((n_users, k), dtype=np.float32)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        block = np.asarray(score(np.arange(start, stop)), dtype=np.float32)
        block = block if block.flags.writeable else block.copy()  # copy only shared arrays
        mask = seen[start:stop]
        block[np.repeat(np.arange(stop - start), np.diff(mask.indptr)), mask.indices] = -np.inf
        items[start:stop], scores[start:stop] = topk.top_k_rows(block, k)
    return items, scores


def hits(top: np.ndarray, relevant: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The users with something relevant, and for each of them which of their top columns are relevant."""
    sizes = np.array([len(rel) for rel in relevant], dtype=np.int64)
    users = np.flatnonzero(sizes)
    n_columns = int(max(top.max(initial=0), max((rel.max(initial=0) for rel in relevant), default=0))) + 1
    wanted = np.repeat(np.arange(len(relevant)), sizes) * n_columns + (np.concatenate(relevant) if len(users) else np.array([], dtype=np.int64))
    return users, np.isin(users[:, None] * n_columns + top[users], wanted)


def user_ndcg(top: np.ndarray, relevant: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user with something relevant: the user, their Recall@k and NDCG@k (binary relevance, IDCG over
    min(|relevant|, k) hits)."""
    k = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    users, found = hits(top, relevant)
    sizes = np.array([len(relevant[u]) for u in users], dtype=np.int64)
    recall = found.sum(axis=1) / np.maximum(sizes, 1)
    ndcg = (found * discounts).sum(axis=1) / np.cumsum(discounts)[np.minimum(sizes, k) - 1] if len(users) else np.zeros(0)
    return users, recall, ndcg


def ranking_metrics(top: np.ndarray, relevant: list[np.ndarray], item_popularity: np.ndarray) -> Metrics:
    """Recall@k and NDCG@k (``user_ndcg``, averaged over users), catalogue coverage, and popularity bias: the mean
    popularity percentile of recommended items (0.5 = unbiased, 1 = only hits)."""
    k = top.shape[1]
    users, recall, ndcg = user_ndcg(top, relevant)
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
