"""Recommendation evaluation and models: hand-computed metrics, no leakage under any split, models that learn."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recsys import baselines, data, evaluate, topk


def test_metrics_match_hand_computed_values():
    top = np.array([[3, 1, 2], [0, 4, 5]])
    relevant = [np.array([1, 7]), np.array([5])]
    m = evaluate.ranking_metrics(top, relevant, item_popularity=np.arange(8, dtype=float))
    # user 0: one of two relevant found at rank 2; user 1: the one relevant at rank 3
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    ndcg1 = 1 / math.log2(4)
    assert m.recall == pytest.approx((0.5 + 1.0) / 2)
    assert m.ndcg == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m.coverage == pytest.approx(6 / 8)
    assert m.popularity_bias == pytest.approx(np.mean([3, 1, 2, 0, 4, 5]) / 7)
    assert m.users == 2


def test_users_without_relevant_items_are_not_counted():
    m = evaluate.ranking_metrics(np.array([[0], [1]]), [np.array([0]), np.array([], dtype=int)], np.ones(2))
    assert (m.users, m.recall) == (1, 1.0)


def test_top_k_excludes_seen_items_and_orders_best_first():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    top, best = evaluate.top_k(lambda rows: scores[rows], seen, 2, chunk=1)
    assert top.tolist() == [[1, 2], [2, 1]]
    np.testing.assert_allclose(best, [[0.8, 0.7], [0.3, 0.2]], rtol=1e-6)


def _reference_top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.where(np.isnan(block), -np.inf, block)
    columns = np.array([np.lexsort((np.arange(len(row)), -row))[:k] for row in scores])
    return columns, np.take_along_axis(scores, columns, axis=1)


@pytest.mark.parametrize("width,k", [(20_000, 100), (3_001, 10), (40, 7), (5, 5)])
def test_top_k_rows_equals_a_full_sort_with_ties_infinities_and_nan(width, k):
    rng = np.random.default_rng(width)
    block = rng.standard_normal((64, width)).astype(np.float32)
    block[1] = np.round(block[1])  # many ties: the lower column wins
    block[2, ::3] = -np.inf  # seen items
    block[3, 5:] = -np.inf  # fewer than k candidates left
    block[4, ::2] = np.nan
    groups = width // topk.GROUPS
    block[5, 0] = np.nan  # a NaN first in a group must not hide the group's maximum
    block[5, groups] = 50.0
    block[6] = 0.0
    block[7, :: max(groups, 1)] = 100.0 + np.arange(len(block[7, :: max(groups, 1)]))  # one group holds the best
    block[10] *= 1e6  # far from the previous row's threshold
    block[11, -3:] = [np.inf, -3e38, 3e38]  # a bisection midpoint would overflow
    block[8] = -0.0
    block[8, 1::3] = 0.0  # -0.0 and 0.0 tie: the lower column wins
    block[9] = np.arange(width)  # ascending: the best columns come last
    columns, scores = topk.top_k_rows(block, k)
    expected_columns, expected_scores = _reference_top_k(block, k)
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(columns, expected_columns)


def test_block_sizes_chosen_while_scoring_change_nothing_but_the_blocks():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((5_000, 300)).astype(np.float32)  # row by row the same whatever the block
    seen = sp.random(5_000, 300, density=0.05, format="csr", random_state=3)
    blocks: list[tuple[int, int]] = []

    def score(rows):
        blocks.append((rows[0], len(rows)))  # threads may call in any order: the first row says which block
        return scores[rows]

    fixed = evaluate.top_k(lambda rows: scores[rows], seen, 10, 128, workers=1)
    for workers in (2, 1):  # one thread last: in two, a block may be handed out before the trial still running is timed
        blocks.clear()
        sizer = evaluate.BlockSizer()
        chosen = evaluate.top_k(score, seen, 10, sizer, workers=workers)
        np.testing.assert_array_equal(chosen[0], fixed[0])
        np.testing.assert_array_equal(chosen[1], fixed[1])
    asked = [size for _, size in sorted(blocks)]
    trials = [size for _ in range(sizer.TRIALS) for size in sizer.CANDIDATES]
    assert asked[: len(trials)] == trials and set(sizer.seconds_per_row) == set(sizer.CANDIDATES)
    assert set(asked[len(trials) : -1]) == {sizer.chosen}  # then the fastest, up to a shorter last block
    timed = evaluate.BlockSizer()
    for size, seconds in ((128, 1.0), (256, 1.0), (512, 3.0), (1024, 6.0), (128, 0.9), (256, 3.0), (512, 3.0), (1024, 6.0)):
        assert timed.next_size() == size
        timed.record(size, size, seconds)
    timed.record(512, 100, 0.001)  # a short last block is not a measurement of its size
    assert timed.chosen == 256 and timed.next_size() == 256  # 1/256 per row beats 0.9/128, 3/512 and 6/1024


def test_blocks_ranked_in_threads_leave_the_thread_settings_as_they_were():
    import numba
    import torch

    rng = np.random.default_rng(4)
    scores = rng.standard_normal((1_000, 500)).astype(np.float32)
    seen = sp.random(1_000, 500, density=0.02, format="csr", random_state=4)
    before = (torch.get_num_threads(), numba.get_num_threads())
    in_threads = evaluate.top_k(lambda rows: scores[rows], seen, 20, 64, workers=3)
    alone = evaluate.top_k(lambda rows: scores[rows], seen, 20, 1_000, workers=1)
    np.testing.assert_array_equal(in_threads[0], alone[0])
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


def test_embedding_scores_are_the_same_whichever_library_multiplies():
    from ml.recsys import score

    rng = np.random.default_rng(5)
    users, items = rng.standard_normal((400, 16)).astype(np.float32), rng.standard_normal((300, 16)).astype(np.float32)
    scorer = score.EmbeddingScorer(users, items)
    trial_blocks = [scorer.score(np.arange(i * 10, i * 10 + 10)).copy() for i in range(scorer.TRIES)]
    assert scorer.library in scorer.LIBRARIES and all(seconds > 0 for seconds in scorer.seconds.values())
    np.testing.assert_allclose(np.vstack(trial_blocks), users[:60] @ items.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scorer.score(np.array([3, 399, 7])), users[[3, 399, 7]] @ items.T, rtol=1e-5, atol=1e-5)


def test_top_k_rows_rejects_k_outside_the_row():
    with pytest.raises(ValueError, match="0 < k <= 4"):
        topk.top_k_rows(np.zeros((2, 4), dtype=np.float32), 5)


def _events(rows):
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "event_ts", "event_type"]).assign(
        event_ts=lambda f: pd.to_datetime(f["event_ts"], utc=True)
    )


def test_leave_last_out_never_shows_the_held_out_items():
    events = _events(
        [("u1", p, f"2024-01-0{d}", "purchase") for d, p in enumerate("abcde", start=1)]
        + [("u2", p, f"2024-01-0{d}", "purchase") for d, p in enumerate("ca", start=1)]
    )
    inter = data.from_events(events)
    split = data.leave_last_out(inter)
    assert len(split.train) == 1  # u2 has too few interactions
    d, e = (np.flatnonzero(inter.item_ids == x)[0] + 1 for x in "de")
    assert (split.valid_target[0], split.test_target[0]) == (d, e)
    assert d not in split.history("valid")[0] and e not in split.history("valid")[0]
    assert e not in split.history("test")[0] and split.history("test")[0][-1] == d


def test_temporal_and_stratified_splits_do_not_leak():
    rng = np.random.default_rng(0)
    events = _events(
        [
            (f"u{rng.integers(20)}", f"p{rng.integers(30)}", pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(h)), "purchase")
            for h in rng.integers(0, 24 * 60, 2000)
        ]
    )
    cutoff = pd.Timestamp("2024-02-01", tz="UTC")
    train, test = data.temporal_split(events, cutoff)
    assert train["event_ts"].max() < cutoff <= test["event_ts"].min()
    assert test["customer_id"].isin(train["customer_id"]).all() and test["product_id"].isin(train["product_id"]).all()
    train, test = data.stratified_split(events, 0.75, seed=42)
    assert set(train.index).isdisjoint(test.index) and len(train) + len(test) == len(events)
    share = train.groupby("customer_id").size() / events.groupby("customer_id").size()
    assert share.between(0.7, 0.8).all()


def _successor_sequences(n_users=300, n_items=40, length=12, seed=0):
    """Each next item is the successor of the previous one: a sequence model can learn it, popularity cannot."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    return [((s + np.arange(length)) % n_items) + 1 for s in starts], n_items


def test_ease_beats_popularity_on_co_occurrence():
    sequences, n_items = _successor_sequences()
    split = data.LeaveLastOut([s[:-2] for s in sequences], np.array([s[-2] for s in sequences]), np.array([s[-1] for s in sequences]), n_items)
    seen = data.user_item_matrix(split.history("test"), n_items)
    relevant = [np.array([t - 1]) for t in split.test_target]
    pop = np.asarray(seen.sum(axis=0)).ravel()
    ease = evaluate.ranking_metrics(evaluate.top_k(baselines.EASE(seen, 10.0).score, seen, 10)[0], relevant, pop)
    popular = evaluate.ranking_metrics(evaluate.top_k(baselines.Popularity.from_matrix(seen).score, seen, 10)[0], relevant, pop)
    assert ease.ndcg > popular.ndcg


def test_sasrec_learns_the_next_item_on_cpu():
    from ml.recsys.sasrec import SASRecConfig, SequenceScorer, train_sasrec

    sequences, n_items = _successor_sequences()
    split = data.LeaveLastOut([s[:-2] for s in sequences], np.array([s[-2] for s in sequences]), np.array([s[-1] for s in sequences]), n_items)
    config = SASRecConfig(max_len=10, dim=32, layers=1, heads=1, dropout=0.1, lr=5e-3, batch_size=64, max_epochs=15, patience=15, seed=1)
    model, trained = train_sasrec(split, config, accelerator="cpu")
    seen = data.user_item_matrix(split.history("test"), n_items)
    relevant = [np.array([t - 1]) for t in split.test_target]
    top, _ = evaluate.top_k(SequenceScorer(model, split.history("test")).score, seen, 10)
    m = evaluate.ranking_metrics(top, relevant, np.asarray(seen.sum(axis=0)).ravel())
    assert m.recall > 0.9, m
    assert trained["recall_at_10"] == pytest.approx(m.recall, abs=0.02)


def test_scoring_writes_one_set_of_rows_per_ds(settings):
    from ml import serving, staging
    from ml.recsys import score

    rng = np.random.default_rng(3)
    users, items = rng.standard_normal((50, 8)), rng.standard_normal((30, 8))
    seen = data.user_item_matrix([rng.choice(30, 5, replace=False) + 1 for _ in range(50)], 30)
    top, best = score.recommend(score.EmbeddingScorer(users, items).score, seen, k=10, chunk=16)
    exact = users @ items.T
    exact[seen.toarray() > 0] = -np.inf
    assert (top == np.argsort(-exact, axis=1)[:, :10]).all()
    frame = score.to_frame(dt.date(2024, 3, 1), np.array([f"C{i}" for i in range(50)]), np.array([f"P{i}" for i in range(30)]), top, best, "toy", "1")
    for _ in range(2):  # a rerun replaces the day
        staging.write(settings, "recommendations", "2024-03-01", frame)
    stored = serving.read_ds(settings.serving_url, "recommendations", "2024-03-01")
    assert len(stored) == 500 and not stored.duplicated(["customer_id", "rank"]).any()
    assert stored.groupby("customer_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
