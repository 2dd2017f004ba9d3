"""One evaluation module for every recommender: full ranking against all items, seen items excluded.

A model is any callable ``score(user_rows) -> (len(user_rows), n_items)`` array of scores over items 0..n-1
that may be called from several threads at once; evaluation ranks in blocks so memory stays bounded whatever the
number of users.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

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


def top_k(score: Scorer, seen: sp.csr_matrix, k: int, chunk: int | BlockSizer | None = None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item columns per user, best first, and their scores, each user's seen items excluded (ranked by
    ``topk.top_k_rows``: ties to the lower item). Users go in blocks of ``chunk`` rows, or of the size a
    ``BlockSizer`` (a fresh one by default) finds fastest.

    ``workers`` threads (numba's thread count by default) each take whole blocks, scoring and ranking them on one
    core. Why not one block at a time over every core: the BLAS and numba thread pools then take turns, and each
    pool's threads keep spinning on the cores while the other works, which on a 2-core host made both the matmul
    and the ranking about twice as slow (README, Recommendations)."""
    n_users = seen.shape[0]
    items = np.empty((n_users, k), dtype=np.int64)
    scores = np.empty((n_users, k), dtype=np.float32)

    def rank(rows: np.ndarray) -> None:
        start, stop = rows[0], rows[-1] + 1
        values = np.asarray(score(rows), dtype=np.float32)
        values = values if values.flags.writeable else values.copy()  # copy only shared arrays
        mask = seen[start:stop]
        values[np.repeat(np.arange(stop - start), np.diff(mask.indptr)), mask.indices] = -np.inf
        items[start:stop], scores[start:stop] = topk.top_k_rows(values, k)

    for_each_block(rank, n_users, BlockSizer() if chunk is None else chunk, workers)
    return items, scores


def for_each_block(work: Callable[[np.ndarray], object], n_users: int, chunk: int | BlockSizer, workers: int | None = None) -> None:
    """Call ``work(rows)`` on consecutive blocks of users 0..n_users-1, in ``workers`` threads (numba's thread count
    by default) that each take whole blocks, with BLAS and numba at one thread per call; a ``BlockSizer`` times
    each block."""
    blocks = _Blocks(n_users, chunk)

    def run() -> None:
        numba.set_num_threads(1)  # this thread's own setting: the kernel runs in the calling thread
        while (block := blocks.next()) is not None:
            start, stop, size = block
            t0 = time.perf_counter()
            work(np.arange(start, stop))
            blocks.record(size, stop - start, time.perf_counter() - t0)

    workers = max(1, min(workers or numba.get_num_threads(), n_users))
    with one_thread_per_call(), ThreadPoolExecutor(workers, thread_name_prefix="blocks") as pool:
        for future in [pool.submit(run) for _ in range(workers)]:
            future.result()


class _Blocks:
    """Hands out consecutive blocks of users to the threads that rank them, sized by a fixed count or a sizer."""

    def __init__(self, n_users: int, sizer: int | BlockSizer):
        self.n_users, self.sizer, self.start = n_users, sizer, 0
        self._lock = threading.Lock()

    def next(self) -> tuple[int, int, int] | None:
        """(start, stop, size asked for) of the next block, or None once every user has one."""
        with self._lock:
            if self.start >= self.n_users:
                return None
            size = self.sizer if isinstance(self.sizer, int) else self.sizer.next_size()
            start, self.start = self.start, min(self.start + size, self.n_users)
            return start, self.start, size

    def record(self, size: int, rows: int, seconds: float) -> None:
        if isinstance(self.sizer, BlockSizer):
            with self._lock:
                self.sizer.record(size, rows, seconds)


@contextlib.contextmanager
def one_thread_per_call() -> Iterator[None]:
    """BLAS (numpy and scipy's OpenBLAS, and torch's own thread pool if torch is loaded) one thread per call while
    blocks are ranked in parallel, restored afterwards."""
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    with _thread_pools().limit(limits=1, user_api="blas"):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(torch_threads)


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's BLAS and OpenMP libraries, looked up once: a lookup walks every loaded shared library, 9 ms in
    a task process with Airflow and MLflow loaded, and the blend's validation ranks hundreds of times."""
    return ThreadpoolController()


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
