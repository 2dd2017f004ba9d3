"""Interaction data for recommenders, built from the contract's ``events`` table, and the evaluation splits.

Items are indexed 1..n_items (0 is padding for sequence models); users 0..n_users-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.errors import EcomError


@dataclass
class Interactions:
    """Time-ordered item sequences per user with the id <-> index maps."""

    user_ids: np.ndarray  # index -> customer_id
    item_ids: np.ndarray  # index - 1 -> product_id (index 0 is padding)
    sequences: list[np.ndarray]  # per user, item indices in time order

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def from_events(events: pd.DataFrame, event_types: tuple[str, ...] = ("purchase",)) -> Interactions:
    """Sequences of the given event types, ordered by time (ties keep their input order)."""
    frame = events[events["event_type"].isin(event_types)]
    if frame.empty:
        raise EcomError(f"events: no rows of type {event_types}; the recommender needs interactions")
    frame = frame.sort_values(["customer_id", "event_ts"], kind="stable")
    item_ids, item_idx = np.unique(frame["product_id"].to_numpy(dtype=str), return_inverse=True)
    user_ids, user_idx = np.unique(frame["customer_id"].to_numpy(dtype=str), return_inverse=True)
    bounds = np.flatnonzero(np.diff(user_idx)) + 1
    sequences = np.split(item_idx.astype(np.int64) + 1, bounds)
    return Interactions(user_ids=user_ids, item_ids=item_ids, sequences=sequences)


@dataclass
class LeaveLastOut:
    """Per user: train on all but the last two items; validate on the second to last; test on the last."""

    train: list[np.ndarray]
    valid_target: np.ndarray
    test_target: np.ndarray
    n_items: int

    def history(self, stage: str) -> list[np.ndarray]:
        """What a model sees before predicting ``stage`` ('valid' or 'test')."""
        if stage == "valid":
            return self.train
        return [np.append(t, v) for t, v in zip(self.train, self.valid_target, strict=True)]

    def target(self, stage: str) -> np.ndarray:
        return self.valid_target if stage == "valid" else self.test_target


def leave_last_out(inter: Interactions) -> LeaveLastOut:
    """The published protocol for Beauty-style sequences (users with at least 3 interactions)."""
    keep = [s for s in inter.sequences if len(s) >= 3]
    if not keep:
        raise EcomError("leave-last-out needs users with at least 3 interactions; none found")
    return LeaveLastOut(
        train=[s[:-2] for s in keep],
        valid_target=np.array([s[-2] for s in keep]),
        test_target=np.array([s[-1] for s in keep]),
        n_items=inter.n_items,
    )


def temporal_split(events: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Global time split (the production protocol): train strictly before ``cutoff``, test at or after it,
    test restricted to users and items seen in training (a model cannot rank what it has never seen)."""
    train = events[events["event_ts"] < cutoff]
    test = events[events["event_ts"] >= cutoff]
    test = test[test["customer_id"].isin(train["customer_id"]) & test["product_id"].isin(train["product_id"])]
    return train, test


def stratified_split(events: pd.DataFrame, ratio: float = 0.75, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Microsoft Recommenders' ``python_stratified_split``: per user, a random ``ratio`` of interactions to train."""
    rng = np.random.default_rng(seed)
    shuffled = events.iloc[rng.permutation(len(events))]
    rank = shuffled.groupby("customer_id").cumcount()
    size = shuffled.groupby("customer_id")["customer_id"].transform("size")
    in_train = rank < np.round(size * ratio)
    return shuffled[in_train].sort_index(), shuffled[~in_train].sort_index()


def index_histories(events: pd.DataFrame, item_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Customers (sorted) and their item indices 1..n in time order, for a model that knows ``item_ids``;
    products the model does not know are left out (cold-start items are scored separately)."""
    position = pd.Series(np.arange(1, len(item_ids) + 1), index=pd.Index(item_ids))
    frame = events[events["product_id"].isin(position.index)].sort_values(["customer_id", "event_ts"], kind="stable")
    customers, user_idx = np.unique(frame["customer_id"].to_numpy(dtype=str), return_inverse=True)
    items = position.reindex(frame["product_id"].to_numpy(dtype=str)).to_numpy(dtype=np.int64)
    return customers, np.split(items, np.flatnonzero(np.diff(user_idx)) + 1) if len(items) else []


def interaction_matrix(events: pd.DataFrame, customer_ids: np.ndarray, item_ids: np.ndarray) -> sp.csr_matrix:
    """Binary (customers x items) matrix of who interacted with what in ``events``, in the given orders;
    rows and columns outside them are ignored."""
    column = pd.Series(np.arange(len(item_ids)), index=pd.Index(item_ids))
    row = pd.Series(np.arange(len(customer_ids)), index=pd.Index(customer_ids))
    known = events[events["product_id"].isin(column.index) & events["customer_id"].isin(row.index)]
    rows = row.reindex(known["customer_id"].to_numpy(dtype=str)).to_numpy()
    cols = column.reindex(known["product_id"].to_numpy(dtype=str)).to_numpy()
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(customer_ids), len(item_ids)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


def relevant_items(test: pd.DataFrame, customer_ids: np.ndarray, item_ids: np.ndarray) -> list[np.ndarray]:
    """Per customer in ``customer_ids``, the distinct columns (0-based, ``item_ids`` order) they interacted with
    in ``test``; empty for customers absent from it."""
    matrix = interaction_matrix(test, customer_ids, item_ids)
    return np.split(matrix.indices.astype(np.int64), matrix.indptr[1:-1])


def recency_matrix(sequences: list[np.ndarray], n_items: int, decay: float) -> sp.csr_matrix:
    """Users x items, each item weighted ``decay ** k`` where k counts the user's purchases after its latest one:
    a customer's last purchases say most about their next. Decay 1 is ``user_item_matrix``."""
    if decay == 1.0:
        return user_item_matrix(sequences, n_items)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = np.concatenate(sequences) - 1 if sequences else np.array([], dtype=np.int64)
    steps_after = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(rows)) - 1
    weights = np.power(decay, steps_after, dtype=np.float64).astype(np.float32)
    latest = ~pd.DataFrame({"row": rows, "col": cols}).duplicated(keep="last").to_numpy()
    return sp.csr_matrix((weights[latest], (rows[latest], cols[latest])), shape=(len(sequences), n_items))


def idle_days(events: pd.DataFrame, customers: np.ndarray, at: pd.Timestamp) -> np.ndarray:
    """Days from each customer's latest event in ``events`` (before ``at``) to ``at``; infinite for a customer with
    none."""
    before = events[events["event_ts"] < at]
    latest = before.groupby("customer_id", observed=True)["event_ts"].max().reindex(pd.Index(customers))
    return ((at - latest).dt.total_seconds() / 86400.0).fillna(np.inf).to_numpy(dtype=np.float64)


def user_item_matrix(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix (columns 0..n_items-1 for item indices 1..n_items)."""
    rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    cols = np.concatenate(sequences) - 1 if sequences else np.array([], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(sequences), n_items))
    matrix.data[:] = 1.0  # duplicates summed by the constructor become 1
    return matrix
