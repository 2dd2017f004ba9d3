"""Batch scoring: top-K products for every customer, seen items excluded, in bounded-memory chunks, written to
the ``recommendations`` serving table (one ds replaced atomically) and to the lake's outputs zone.

In the DAG, customers are split into shards by a stable hash; each shard task scores with the champion version
resolved once for the run and stages its rows; ``publish`` then replaces the ds in one go, so a rerun leaves
exactly one set of rows and a failed shard leaves the previous day's set untouched."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import contract, parallel
from ml.recsys import coldstart, evaluate, io
from ml.recsys.model import Recommender
from ml.settings import Settings

log = logging.getLogger(__name__)

COLD_START_MODEL = "cold_start_region_popularity"


def matmul(library: str, users: np.ndarray, items_t: np.ndarray, out: np.ndarray) -> None:
    """``out = users @ items_t`` with numpy's BLAS (``numpy``) or torch's (``torch``)."""
    if library == "numpy":
        np.matmul(users, items_t, out=out)
    else:
        import torch

        torch.mm(torch.from_numpy(users), torch.from_numpy(items_t), out=torch.from_numpy(out))


class EmbeddingScorer:
    """Scores as dot products of user and item vectors: what a factorization or a sequence model exports.

    Each thread writes into its own reused buffer (valid until that thread's next call): allocating a fresh block
    per call (160 MB for 2,048 users) cost more in page faults than the matmul itself. The matmul runs on numpy's
    BLAS (OpenBLAS) or torch's (MKL), whichever is the faster on this machine: the first TRIES blocks are computed
    by both, while the other threads score theirs, and the rest by the faster in total. In the scoring benchmark
    MKL was the faster on an Intel host and about 1.7 times slower than OpenBLAS on an AMD one (README)."""

    LIBRARIES = ("numpy", "torch")
    TRIES = 6

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray):
        self.users = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.items_t = np.ascontiguousarray(np.asarray(item_vectors, dtype=np.float32).T)
        self.library: str | None = None
        self.seconds = dict.fromkeys(self.LIBRARIES, 0.0)
        self._tries = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def score(self, rows: np.ndarray) -> np.ndarray:
        contiguous = len(rows) and rows[-1] - rows[0] == len(rows) - 1
        users = self.users[rows[0] : rows[-1] + 1] if contiguous else self.users[rows]
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < len(rows):
            buffer = self._local.buffer = np.empty((len(rows), self.items_t.shape[1]), dtype=np.float32)
        out = buffer[: len(rows)]
        if self.library is None:
            self._try_both(users, out)
        else:
            matmul(self.library, users, self.items_t, out)
        return out

    def _try_both(self, users: np.ndarray, out: np.ndarray) -> None:
        """Compute the block with each library (which goes first alternates: the first write into a fresh buffer
        costs more), add up their times, and choose once TRIES blocks have been timed."""
        with self._lock:
            order = self.LIBRARIES if self._tries % 2 == 0 else self.LIBRARIES[::-1]
            self._tries += 1
        for library in order:
            t0 = time.perf_counter()
            matmul(library, users, self.items_t, out)
            with self._lock:
                self.seconds[library] += time.perf_counter() - t0
        with self._lock:
            if self._tries >= self.TRIES and self.library is None:
                self.library = min(self.seconds, key=self.seconds.__getitem__)
                times = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in self.seconds.items())
                log.info("matmul over %d trial blocks: %s; scoring with %s", self._tries, times, self.library)


def recommend(score: evaluate.Scorer, seen: sp.csr_matrix, k: int = 100, chunk: int | evaluate.BlockSizer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item columns and scores per user; logs the rate."""
    t0 = time.perf_counter()
    k = min(k, seen.shape[1])
    items, scores = evaluate.top_k(score, seen, k, chunk)
    elapsed = time.perf_counter() - t0
    log.info(
        "scored %d customers x %d products (top %d) in %.1fs: %.0f customers/s", seen.shape[0], seen.shape[1], k, elapsed, seen.shape[0] / max(elapsed, 1e-9)
    )
    return items, scores


def to_frame(
    ds: dt.date, customer_ids: np.ndarray, product_ids: np.ndarray, items: np.ndarray, scores: np.ndarray, model_name: str, model_version: str
) -> pd.DataFrame:
    """Rows of the contract ``recommendations(ds, customer_id, rank, product_id, score, model_name, model_version)``;
    slots with no candidate left (every product seen) are dropped."""
    n_users, k = items.shape
    frame = pd.DataFrame(
        {
            "ds": ds.isoformat(),
            "customer_id": np.repeat(np.asarray(customer_ids), k),
            "rank": np.tile(np.arange(1, k + 1), n_users),
            "product_id": np.asarray(product_ids)[items.ravel()],
            "score": scores.ravel(),
            "model_name": model_name,
            "model_version": str(model_version),
        }
    )
    return frame[np.isfinite(frame["score"])].reset_index(drop=True)


def recommend_customers(
    model: Recommender,
    customers: pd.DataFrame,
    events: pd.DataFrame,
    catalogue: pd.DataFrame,
    k: int,
    popularity_days: int,
    ds: dt.date,
    model_name: str,
    model_version: str,
) -> pd.DataFrame:
    """Top-k rows for every customer in ``customers``: the model over known and (by siblings) new catalogue
    products for customers with a known history, recent regional popularity for the others. Models that rank by
    recent counts count the ``popularity_days`` up to ds.
    ``events`` must hold everyone's events (recent popularity is shop-wide); products the customer interacted with
    in the model's event types (purchases by default) are never shown."""
    catalogue_ids = catalogue["product_id"].to_numpy(dtype=str)
    end = pd.Timestamp(ds + dt.timedelta(days=1), tz="UTC")
    model = model.with_recent_counts(events, end, popularity_days)
    # what the model learned from is what counts as seen, as on the holdout: a product viewed but not bought
    # stays a candidate (excluding every view left active customers only the products they care least about)
    mine = events[events["customer_id"].isin(customers["customer_id"]) & events["event_type"].isin(model.event_types)]
    warm, histories = model.histories(mine)
    new_ids, siblings = coldstart.sibling_matrix(model.item_ids, catalogue)
    columns = np.concatenate([model.item_ids, new_ids])
    scorer = coldstart.with_new_items(model.scorer(histories, model.idle_days(mine, warm, end)), siblings, ~np.isin(model.item_ids, catalogue_ids))
    items, scores = recommend(scorer, model.excluded(histories, len(columns)), k)
    frames = [to_frame(ds, warm, columns, items, scores, model_name, model_version)]

    cold = customers[~customers["customer_id"].isin(warm)]
    if len(cold):
        recent = events[
            events["event_type"].isin(model.event_types) & (events["event_ts"] < end) & (events["event_ts"] >= end - pd.Timedelta(days=popularity_days))
        ]
        lists = coldstart.popular_by_region(recent, customers, catalogue_ids, k)
        regional = cold[["customer_id", "region"]].merge(lists[lists["region"].notna()], on="region", how="inner")
        rest = cold[~cold["customer_id"].isin(regional["customer_id"])][["customer_id"]]
        overall = rest.merge(lists[lists["region"].isna()].drop(columns="region"), how="cross")
        fallback = pd.concat([regional.drop(columns="region"), overall], ignore_index=True)
        frames.append(fallback.assign(ds=ds.isoformat(), model_name=COLD_START_MODEL, model_version=str(model_version)))
        log.info("%d customers without a known history get recent regional popularity (%d days before %s)", len(cold), popularity_days, end.date())
    columns_out = contract.table(io.TABLE).column_names
    return pd.concat([f[columns_out] for f in frames], ignore_index=True).sort_values(["customer_id", "rank"], ignore_index=True)


def score_shard(settings: Settings, ds: dt.date, shard: int, shards: int, version: str, k: int, popularity_days: int, history_days: int) -> dict:
    """Score one shard of ds's customers with champion ``version`` and stage the rows."""
    from ml.recsys.train import MODEL_NAME, load_recommender

    model = load_recommender(settings, f"models:/{MODEL_NAME}/{version}")
    inputs = io.load_scoring_inputs(settings, ds, history_days)
    events, customers = inputs.events, inputs.customers
    everyone = pd.concat([customers[["customer_id", "region"]], pd.DataFrame({"customer_id": events["customer_id"].unique(), "region": None})]).drop_duplicates(
        "customer_id"
    )
    mine = everyone[parallel.shard_of(everyone["customer_id"], shards) == shard]
    frame = recommend_customers(model, mine, events, inputs.catalogue, k, popularity_days, ds, MODEL_NAME, version)
    rows = io.stage_recommendations(settings, ds, shard, frame)
    log.info("shard %d/%d of ds=%s: %d customers, %d rows (model v%s)", shard, shards, ds, len(mine), rows, version)
    return {"shard": shard, "customers": len(mine), "rows": rows, "version": version}
