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


def ranking_metrics(top: np.ndarray, relevant: list[np.ndarray], item_popularity: np.ndarray) -> Metrics:
    """Recall@k and NDCG@k with binary relevance (IDCG over min(|relevant|, k) hits), catalogue coverage,
    and popularity bias: the mean popularity percentile of recommended items (0.5 = unbiased, 1 = only hits)."""
    k = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    users = [u for u, rel in enumerate(relevant) if len(rel)]
    recall, ndcg = np.zeros(len(users)), np.zeros(len(users))
    for i, u in enumerate(users):
        hits = np.isin(top[u], relevant[u])
        recall[i] = hits.sum() / len(relevant[u])
        ndcg[i] = (hits * discounts).sum() / discounts[: min(len(relevant[u]), k)].sum()
    percentile = item_popularity.argsort().argsort() / max(len(item_popularity) - 1, 1)
    recommended = top[users]
    return Metrics(
        recall=float(recall.mean()),
        ndcg=float(ndcg.mean()),
        coverage=float(len(np.unique(recommended)) / len(item_popularity)),
        popularity_bias=float(percentile[recommended].mean()),
        k=k,
        users=len(users),
    )
