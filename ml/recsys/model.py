"""The deployable recommender: one object for every model kind, and its MLflow pyfunc wrapper.

A ``Recommender`` knows its items (score column j is ``item_ids[j]``) and turns customers' histories into
scores over them. Models are evaluated and served through the same ``scorer``, so what passed the gate is
exactly what scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.errors import ConfigError
from ml.recsys import baselines, data, evaluate

KINDS = ("popularity", "ease", "blend", "sasrec")
COUNTED = ("popularity", "blend")  # kinds that rank by recent counts, refreshed on the day they score


@dataclass
class Recommender:
    kind: str
    item_ids: np.ndarray
    # popularity: counts; ease: weights, l2; blend: ease's + counts, popularity_weight, query_decay, idle_half_life;
    # sasrec: n_items, config, weights (numpy)
    state: dict[str, Any]
    trained_through: str  # the last instant of training data (ISO); later data is fair evaluation data
    event_types: tuple[str, ...] = ("purchase",)  # the interactions it learned from, and reads histories of
    repeat_purchases: bool = False  # may recommend what the customer already bought (evaluated so too)
    _network: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown recommender kind {self.kind!r}; choose one of {KINDS}")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def histories(self, events: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
        """Customers and their known-item histories (indices 1..n) from contract events."""
        return data.index_histories(events[events["event_type"].isin(self.event_types)], self.item_ids)

    def idle_days(self, events: pd.DataFrame, customers: np.ndarray, at: pd.Timestamp) -> np.ndarray:
        """Days from each customer's latest interaction (of the model's event types) to ``at``."""
        return data.idle_days(events[events["event_type"].isin(self.event_types)], customers, at)

    def excluded(self, histories: list[np.ndarray], n_columns: int | None = None) -> sp.csr_matrix:
        """The (customers x columns) products never to recommend: what each customer bought, unless the model
        recommends repeat purchases (then nothing)."""
        n_columns = self.n_items if n_columns is None else n_columns
        if self.repeat_purchases:
            return sp.csr_matrix((len(histories), n_columns), dtype=np.float32)
        bought = data.user_item_matrix(histories, self.n_items)
        bought.resize((len(histories), n_columns))  # columns past the model's items (new products) were never bought
        return bought

    def scorer(self, histories: list[np.ndarray], idle_days: np.ndarray | None = None) -> evaluate.Scorer:
        """``score(rows) -> (len(rows), n_items)`` for the customers whose histories are given; a blend whose EASE
        share fades with idle time also needs their ``idle_days`` (same order)."""
        if self.kind == "popularity":
            return baselines.Popularity(self.state["counts"]).score
        if self.kind in ("ease", "blend"):
            # models registered before the blend learnt recency have neither key: binary histories, a fixed share
            matrix = data.recency_matrix(histories, self.n_items, self.state.get("query_decay", 1.0))
            ease = baselines.EASE(matrix, self.state["l2"], self.state["weights"]).score
            if self.kind == "ease":
                return ease
            state = self.state
            return baselines.Blend(ease, state["counts"], state["popularity_weight"], idle_days, state.get("idle_half_life")).score
        from ml.recsys.sasrec import SequenceScorer

        return SequenceScorer(self.network(), histories).score

    def with_recent_counts(self, events: pd.DataFrame, end: pd.Timestamp, days: int) -> Recommender:
        """The same model with its popularity counted over the ``days`` before ``end`` in ``events`` (shop-wide
        events of its types): a model trained last week ranks by what sells now. Other kinds are returned as they are."""
        if self.kind not in COUNTED:
            return self
        typed = events[events["event_type"].isin(self.event_types)]
        counts = baselines.recent_counts(typed, self.item_ids, end, days)
        return replace(self, state=self.state | {"counts": counts})

    def network(self):
        """The SASRec network, rebuilt from its weights once per process (CPU, or the GPU when present)."""
        if self._network is None:
            import torch

            from ml.recsys.sasrec import SASRec

            net = SASRec(self.state["n_items"], self.state["config"])
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.state["weights"].items()})
            self._network = net.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        return self._network

    def recommend(self, events: pd.DataFrame, k: int, at: pd.Timestamp | None = None) -> pd.DataFrame:
        """Top-k known products per customer in ``events`` (bought ones left out unless the model recommends repeat
        purchases) as of ``at`` (by default just after the latest event): (customer_id, rank, product_id, score)."""
        customers, histories = self.histories(events)
        at = events["event_ts"].max() + pd.Timedelta(microseconds=1) if at is None else at
        scorer = self.scorer(histories, self.idle_days(events, customers, at))
        items, scores = evaluate.top_k(scorer, self.excluded(histories), min(k, self.n_items))
        k = items.shape[1]
        frame = pd.DataFrame(
            {
                "customer_id": np.repeat(customers, k),
                "rank": np.tile(np.arange(1, k + 1), len(customers)),
                "product_id": self.item_ids[items.ravel()],
                "score": scores.ravel().astype(np.float64),
            }
        )
        return frame[np.isfinite(frame["score"])].reset_index(drop=True)

    def __getstate__(self):  # the rebuilt network is a cache, not part of the artifact
        return {**self.__dict__, "_network": None}


def sasrec_state(net, n_items: int) -> dict[str, Any]:
    """What a trained SASRec needs to be rebuilt anywhere: sizes, config and CPU weights."""
    from dataclasses import asdict

    return {"n_items": n_items, "config": asdict(net.config), "weights": {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}}


def pyfunc_model(recommender: Recommender):
    """The MLflow pyfunc: input contract events (customer_id, product_id, event_ts as naive UTC, event_type),
    param ``k``; output the top-k table as of just after the latest input event. Built lazily so importing this module does not import MLflow."""
    from mlflow.pyfunc import PythonModel

    class RecommenderModel(PythonModel):
        def __init__(self, model: Recommender):
            self.recommender = model

        def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
            return self.recommender.recommend(model_input, int((params or {}).get("k", 10)))

    return RecommenderModel(recommender)
