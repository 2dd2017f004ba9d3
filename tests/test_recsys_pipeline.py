"""The production recommender pipeline: cold start, sharded scoring, temporal holdout, MLflow gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml import lake, parallel, registry, serving, staging
from ml.errors import ConfigError, EcomError
from ml.recsys import baselines, coldstart, data, io, score, train
from ml.recsys.model import Recommender


def _events(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "event_ts", "event_type"]).assign(
        event_ts=lambda f: pd.to_datetime(f["event_ts"], utc=True)
    )


CATALOGUE = pd.DataFrame({"product_id": ["A1", "A2", "B1", "NEW_A", "NEW_Z"], "category": ["a", "a", "b", "a", "z"], "brand": ["x", "y", "x", "y", "q"]})


def test_new_products_take_the_mean_score_of_their_siblings():
    new_ids, siblings = coldstart.sibling_matrix(np.array(["A1", "A2", "B1"]), CATALOGUE)
    assert new_ids.tolist() == ["NEW_A", "NEW_Z"]
    # NEW_A shares category and brand with A2 only; NEW_Z has no sibling at all
    np.testing.assert_allclose(siblings.toarray(), [[0, 0], [1, 0], [0, 0]])
    new_ids, siblings = coldstart.sibling_matrix(np.array(["A1", "B1"]), CATALOGUE)  # no brand match: category
    np.testing.assert_allclose(siblings.toarray()[:, new_ids.tolist().index("NEW_A")], [1, 0])
    scorer = coldstart.with_new_items(lambda rows: np.array([[3.0, 1.0]] * len(rows)), siblings, unavailable=np.array([False, True]))
    out = scorer(np.arange(2))
    assert out.shape == (2, 2 + len(new_ids))
    assert out[0, 1] == -np.inf and out[0, 2 + new_ids.tolist().index("NEW_A")] == 3.0


def test_recent_counts_only_count_the_window_before_the_end():
    events = _events(
        [
            ("c", "A1", "2024-01-01", "purchase"),
            ("c", "A1", "2024-01-25", "purchase"),
            ("d", "A2", "2024-01-30", "purchase"),
            ("d", "A2", "2024-02-01", "purchase"),
        ]
    )
    counts = baselines.recent_counts(events, np.array(["A1", "A2", "B1"]), pd.Timestamp("2024-02-01", tz="UTC"), 10)
    assert counts.tolist() == [1, 1, 0]


def test_cold_customers_get_their_regions_recent_bestsellers():
    customers = pd.DataFrame({"customer_id": ["n1", "n2", "n3", "o1", "o2", "o3"], "region": ["N", "N", None, "S", "S", "N"]})
    recent = _events(
        [
            ("o1", "B1", "2024-01-30", "purchase"),
            ("o2", "B1", "2024-01-30", "purchase"),
            ("o3", "A1", "2024-01-30", "purchase"),
            ("o3", "A1", "2024-01-29", "purchase"),
            ("o1", "A2", "2024-01-29", "purchase"),
        ]
    )
    lists = coldstart.popular_by_region(recent, customers, CATALOGUE["product_id"].to_numpy(), 2)
    top = {r if isinstance(r, str) else None: g.sort_values("rank")["product_id"].tolist() for r, g in lists.groupby("region", dropna=False)}
    assert top["N"] == ["A1", "B1"]  # region N bought A1 twice; global B1 breaks the tie with A2
    assert top["S"] == ["B1", "A2"]  # S bought B1 twice, A2 once
    assert top[None] == ["A1", "B1"]  # A1 and B1 both sold twice overall: stable order


def _shop():
    """Ten warm customers who buy A1 -> A2 -> B1 in turn, two cold ones; NEW_A is new in the catalogue."""
    rows = []
    for i in range(10):
        for day, item in enumerate(["A1", "A2", "B1"][: 1 + i % 3]):
            rows.append((f"w{i}", item, f"2024-01-{10 + day:02d}", "purchase"))
    events = _events(rows)
    customers = pd.DataFrame({"customer_id": [f"w{i}" for i in range(10)] + ["cold1", "cold2"], "region": ["N"] * 11 + [None]})
    return events, customers


def test_every_customer_gets_k_unseen_products_warm_or_cold():
    events, customers = _shop()
    model, _ = train.fit(events, pd.Timestamp("2024-02-01", tz="UTC"), train.RecsysConfig(model="ease", ease_l2=1.0))
    frame = score.recommend_customers(model, customers, events, CATALOGUE, 3, 28, dt.date(2024, 1, 31), "m", "7")
    assert set(frame["customer_id"]) == set(customers["customer_id"])
    assert not frame.duplicated(["customer_id", "rank"]).any() and (frame["model_version"] == "7").all()
    seen = set(zip(events["customer_id"], events["product_id"], strict=True))
    assert not any((c, p) in seen for c, p in zip(frame["customer_id"], frame["product_id"], strict=True))
    warm = frame[frame["customer_id"] == "w0"]  # bought A1 only
    assert "NEW_A" in set(warm["product_id"]) and warm["model_name"].eq("m").all()
    # a product only viewed is still a candidate (the model learned from purchases, and was evaluated so)
    viewed = pd.concat([events, _events([("w0", "A2", "2024-01-20", "view"), ("w0", "B1", "2024-01-20", "view")])])
    again = score.recommend_customers(model, customers, viewed, CATALOGUE, 3, 28, dt.date(2024, 1, 31), "m", "7")
    assert set(again[again["customer_id"] == "w0"]["product_id"]) == set(warm["product_id"]) >= {"A2", "B1"}
    cold = frame[frame["customer_id"] == "cold1"]
    assert cold["model_name"].eq(score.COLD_START_MODEL).all() and len(cold) == 3


def test_the_blend_spans_ease_and_recent_popularity():
    def ease(rows):
        return np.array([[0.0, 2.0, 1.0]] * len(rows))

    counts = np.array([9.0, 0.0, 3.0])

    def ranking(weight: float) -> list[int]:
        return np.argsort(-baselines.Blend(ease, counts, weight).score(np.arange(1))[0], kind="stable").tolist()

    assert ranking(0.0) == [1, 2, 0] and ranking(1.0) == [0, 2, 1]
    assert ranking(0.5) == [2, 0, 1]  # item 2 is second on both: the mixture puts it first
    with pytest.raises(ConfigError, match="outside"):
        baselines.Blend(ease, counts, 1.5)


def test_a_customers_latest_purchases_weigh_most_and_the_idle_lean_on_popularity():
    recency = data.recency_matrix([np.array([3, 1, 2, 1])], 4, 0.5).toarray()[0]
    assert recency.tolist() == [1.0, 0.5, 0.125, 0.0]  # item 1 counts at its latest purchase, item 3 three purchases back
    assert (data.recency_matrix([np.array([3, 1, 1])], 4, 1.0).toarray() == data.user_item_matrix([np.array([3, 1, 1])], 4).toarray()).all()
    events = _events([("a", "P1", "2024-01-01", "purchase"), ("a", "P2", "2024-01-21", "purchase"), ("b", "P1", "2024-01-11", "purchase")])
    at = pd.Timestamp("2024-01-31", tz="UTC")
    assert data.idle_days(events, np.array(["a", "b", "c"]), at).tolist() == [10.0, 20.0, np.inf]

    def ease(rows):
        return np.array([[0.0, 2.0, 1.0]] * len(rows))

    blend = baselines.Blend(ease, np.array([9.0, 0.0, 3.0]), 0.2, idle_days=np.array([0.0, 30.0, np.inf]), idle_half_life=30.0)
    assert blend.personal(np.arange(3)) == pytest.approx([0.8, 0.4, 0.0])
    assert np.argsort(-blend.score(np.array([0, 2])), axis=1, kind="stable").tolist() == [[1, 2, 0], [0, 2, 1]]
    with pytest.raises(ConfigError, match="idle days"):
        baselines.Blend(ease, np.ones(3), 0.2, idle_half_life=30.0)


def _chain_rows(customers: int = 200, seed: int = 0) -> list[tuple]:
    """Customers buy item i, then i+1 (mod 20) five days later, three times, and a fourth time 35 days after the
    start: co-occurrence that EASE learns and popularity cannot."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        start = int(rng.integers(20))
        for step in range(4):
            day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 5)) + (5 * step if step < 3 else 35))
            rows.append((f"c{c}", f"P{(start + step) % 20:02d}", day, "purchase"))
    return rows


def test_the_blend_setting_is_chosen_on_a_validation_window_before_the_holdout():
    config = train.RecsysConfig(model="blend", holdout_days=10, history_days=60, ease_l2=1.0)
    # the chain: validation (Jan 14..23) holds the third purchases, which the first two predict
    chain = _events(_chain_rows())
    at = pd.Timestamp("2024-01-24", tz="UTC")
    model, facts = train.fit(chain[chain["event_ts"] < at], at, config)
    setting, by_setting = train.blend_setting(chain[chain["event_ts"] < at], at, config)
    assert model.kind == "blend" and {k: model.state[k] for k in setting.as_dict()} == setting.as_dict() == {k: facts[k] for k in setting.as_dict()}
    assert setting.popularity_weight < 1.0 and by_setting[setting] > by_setting[train.BlendSetting(1.0)]
    assert facts["validation_ndcg_at_10"] == by_setting[setting] and len(by_setting) == len(train.blend_settings(recency=True))
    fixed, by_weight = train.blend_setting(chain[chain["event_ts"] < at], at, replace(config, blend_recency=False))
    assert (fixed.query_decay, fixed.idle_half_life) == (1.0, None) and set(by_weight) == set(train.blend_settings(recency=False))
    assert by_setting[setting] >= by_weight[fixed]  # the recency settings include the fixed ones
    # one purchase per customer: no co-occurrence, EASE scores nothing, and the tie goes to popularity
    # before the validation window (Jan 22..31) half the customers bought P05, the rest one of the others; in it,
    # the rest buy P05 too
    first = _events([(f"s{c}", "P05" if c % 2 == 0 else f"P{(c // 2) % 12:02d}", f"2024-01-{1 + c % 20:02d}", "purchase") for c in range(300)])
    single = pd.concat([first, first[first["product_id"] != "P05"].assign(product_id="P05", event_ts=pd.Timestamp("2024-01-25", tz="UTC"))])
    setting, by_setting = train.blend_setting(single, pd.Timestamp("2024-02-01", tz="UTC"), config)
    assert setting == train.BlendSetting(1.0) and by_setting[setting] > by_setting[train.BlendSetting(0.0)]
    with pytest.raises(EcomError, match="validation window"):
        train.blend_setting(chain[chain["event_ts"] < "2024-01-05"], pd.Timestamp("2024-01-05", tz="UTC"), config)


def test_a_recency_blend_scores_each_customer_by_their_idle_days_on_the_scoring_day():
    chain = _events(_chain_rows())
    at = pd.Timestamp("2024-01-24", tz="UTC")
    model, _ = train.fit(chain[chain["event_ts"] < at], at, train.RecsysConfig(model="blend", ease_l2=1.0, holdout_days=10))
    # EASE alone for a customer seen today, popularity alone for one gone for months
    model = replace(model, state=model.state | {"popularity_weight": 0.0, "query_decay": 1.0, "idle_half_life": 1.0})
    bestseller = _events([(f"x{i}", "P10", "2024-02-10", "purchase") for i in range(30)])
    buyers = _events([("active", "P00", "2024-02-19", "purchase"), ("idle", "P00", "2023-11-01", "purchase")])
    events = pd.concat([chain, bestseller, buyers])
    customers = pd.DataFrame({"customer_id": ["active", "idle"], "region": ["N", "N"]})
    catalogue = pd.DataFrame({"product_id": model.item_ids, "category": "c", "brand": "b"})
    frame = score.recommend_customers(model, customers, events, catalogue, 3, 28, dt.date(2024, 2, 19), "m", "1")
    top = frame[frame["rank"] == 1].set_index("customer_id")["product_id"]
    assert top["active"] in {"P19", "P01"} and top["idle"] == "P10"  # P00's neighbours in the chain; what sells now
    fresh = model.with_recent_counts(events, pd.Timestamp("2024-02-20", tz="UTC"), 28)
    served = fresh.recommend(events[events["customer_id"].isin(["active", "idle"])], 1)  # the pyfunc's path: as of the latest event
    assert served.set_index("customer_id")["product_id"].to_dict() == top.to_dict()


def test_counted_models_rank_by_what_sells_on_the_day_they_score():
    chain = _events(_chain_rows())
    at, scored = pd.Timestamp("2024-01-24", tz="UTC"), pd.Timestamp("2024-02-20", tz="UTC")
    later = _events([(f"x{i}", "P07", "2024-02-19", "purchase") for i in range(20)])
    for kind in ("popularity", "blend"):
        config = train.RecsysConfig(model=kind, ease_l2=1.0, holdout_days=10, popularity_days=7)
        model, _ = train.fit(chain[chain["event_ts"] < at], at, config)
        trained = model.state["counts"].copy()
        assert trained.sum() == ((chain["event_ts"] < at) & (chain["event_ts"] >= at - pd.Timedelta(days=7))).sum()
        fresh = model.with_recent_counts(pd.concat([chain, later]), scored, 7)
        assert dict(zip(fresh.item_ids, fresh.state["counts"], strict=True)) == {p: 20 if p == "P07" else 0 for p in model.item_ids}
        assert (model.state["counts"] == trained).all()  # the registered model is not changed
    events, customers = _shop()
    ease, _ = train.fit(events, pd.Timestamp("2024-01-13", tz="UTC"), train.RecsysConfig(model="ease", ease_l2=1.0))
    assert ease.with_recent_counts(later, scored, 7) is ease
    # scoring counts the popularity_days up to ds: at training A2 outsold B1 (6 to 3), in the last week B1 sold 20
    popular, _ = train.fit(events, pd.Timestamp("2024-01-13", tz="UTC"), train.RecsysConfig(model="popularity", popularity_days=14))
    week = _events([(f"x{i}", "B1", "2024-01-30", "purchase") for i in range(20)])
    frame = score.recommend_customers(popular, customers, pd.concat([events, week]), CATALOGUE, 3, 7, dt.date(2024, 1, 31), "m", "1")
    assert frame[frame["customer_id"] == "w0"].sort_values("rank")["product_id"].tolist()[:2] == ["B1", "A2"]


def test_repeat_purchases_are_recommended_and_scored_only_when_asked():
    # everyone keeps buying their own staple, and once the shop's bestseller P00
    rows = [(f"c{c}", f"P{1 + c % 19:02d}", f"2024-01-{day:02d}", "purchase") for c in range(40) for day in (2, 9, 16, 23)]
    rows += [(f"c{c}", "P00", "2024-01-05", "purchase") for c in range(40)]
    events, at = _events(rows), pd.Timestamp("2024-01-20", tz="UTC")
    train_part, test_part = events[events["event_ts"] < at], events[events["event_ts"] >= at]
    by_default, _ = train.fit(train_part, at, train.RecsysConfig(model="popularity"))
    again, _ = train.fit(train_part, at, train.RecsysConfig(model="popularity", repeat_purchases=True))
    assert again.repeat_purchases and not by_default.repeat_purchases
    # the staples are all the holdout holds: left out, nothing can hit; allowed, the better sold half of them do
    assert train.holdout_metrics(by_default, train_part, test_part)["recall_at_10"] == 0.0
    assert train.holdout_metrics(again, train_part, test_part)["recall_at_10"] >= 0.4
    top = again.recommend(train_part, 3)
    assert (top.groupby("customer_id")["product_id"].first() == "P00").all()
    assert "P00" not in set(by_default.recommend(train_part, 3)["product_id"])


def test_shards_are_stable_and_cover_everyone():
    ids = np.array([f"C{i:05d}" for i in range(1000)])
    first, again = parallel.shard_of(ids, 4), parallel.shard_of(ids[::-1], 4)[::-1]
    assert (first == again).all() and set(first) == {0, 1, 2, 3}
    assert np.bincount(first).min() > 200


def test_publish_replaces_the_ds_and_refuses_incomplete_or_mixed_shards(settings):
    frames = [
        pd.DataFrame(
            {"ds": "2024-01-31", "customer_id": [f"c{s}"], "rank": [1], "product_id": ["A1"], "score": [1.0], "model_name": ["m"], "model_version": ["3"]}
        )
        for s in range(2)
    ]
    staging.stage(settings, "recommendations", "2024-01-31", 0, frames[0])
    with pytest.raises(EcomError, match="shard 1 of 2 is missing"):
        io.publish(settings, dt.date(2024, 1, 31), 2, "3")
    for _ in range(2):  # a rerun leaves exactly one set of rows
        for s, frame in enumerate(frames):
            staging.stage(settings, "recommendations", "2024-01-31", s, frame)
        assert io.publish(settings, dt.date(2024, 1, 31), 2, "3") == 2
    assert len(serving.read_ds(settings.serving_url, "recommendations", "2024-01-31")) == 2
    staging.stage(settings, "recommendations", "2024-01-31", 0, frames[0])
    staging.stage(settings, "recommendations", "2024-01-31", 1, frames[1].assign(model_version="4"))
    with pytest.raises(EcomError, match="model versions"):
        io.publish(settings, dt.date(2024, 1, 31), 2, "3")


def test_temporal_holdout_never_trains_on_the_holdout():
    events, _ = _shop()
    late = _events([("w1", "B1", "2024-01-30", "purchase"), ("w2", "A1", "2024-01-31", "purchase")])
    config = train.RecsysConfig(model="popularity", holdout_days=3, popularity_days=30)
    trn, test, at = train.holdout(pd.concat([events, late]), dt.date(2024, 1, 31), config)
    assert at == pd.Timestamp("2024-01-29", tz="UTC") and trn["event_ts"].max() < at <= test["event_ts"].min()
    model, _ = train.fit(trn, at, config)
    assert pd.Timestamp(model.trained_through) < at
    assert dict(zip(model.item_ids, model.state["counts"], strict=True)) == {"A1": 10, "A2": 6, "B1": 3}


def test_config_rejects_bad_params():
    with pytest.raises(ConfigError, match="not one of"):
        train.RecsysConfig.from_params({"model": "bert4rec"})
    with pytest.raises(ConfigError, match="holdout_days"):
        train.RecsysConfig(holdout_days=30, history_days=30)
    assert train.RecsysConfig.from_params({"model": "ease", "k": None}).k == 100
    with pytest.raises(ConfigError, match="dag_run_id"):
        train.RecsysConfig.from_params({"model": "ease", "dag_run_id": "x"})


def _publish_events(settings, events: pd.DataFrame, through: str | None = None) -> None:
    """Every day from the first event to the last is published, days without events as empty partitions (as the
    ingest does: a missing day would be refused by the readers)."""
    by_day = dict(tuple(events.assign(session_id="s").groupby(events["event_ts"].dt.date)))
    for day in pd.date_range(min(by_day), through or max(by_day), freq="D").date:
        lake.write_partition(settings.lake, "curated", "events", day, by_day.get(day, events.iloc[0:0].assign(session_id="s")))


def _register(settings, evaluated: dict) -> dict:
    """The pipeline's register step (ml.pipeline.model_steps) on its own."""
    return registry.register_run(settings, train.REGISTRY_ENTRY, evaluated, train.version_tags(evaluated))


def test_gate_promotes_only_a_better_model_and_scoring_uses_the_champion(settings):
    rows = _chain_rows()
    ds = dt.date(2024, 2, 12)  # holdout Feb 3..12 holds every customer's fourth purchase
    _publish_events(settings, _events(rows), through=ds)
    results = {}
    for kind in ("popularity", "ease", "popularity"):
        config = train.RecsysConfig(model=kind, holdout_days=10, history_days=60, ease_l2=1.0)
        registered = _register(settings, train.evaluate_run(settings, ds, train.train_run(settings, ds, config)))
        results[registered["version"]] = train.gate(settings, ds, registered)
    # popularity alone is the baseline itself: not promoted, even as the first version; recent popularity is
    # registered (v2) and served until EASE (v3) beats it; the second popularity model (v4) loses to both
    assert list(results) == ["1", "3", "4"] and [r["promoted"] for r in results.values()] == [False, True, False]
    assert "does not beat the baseline's (recent popularity (28 days))" in results["1"]["reason"]
    assert results["1"]["reason"].endswith("the baseline is served instead (v2)")
    assert "beats the baseline's" in results["3"]["reason"] and "beats the champion's" in results["3"]["reason"]
    assert registry.champion_version(settings, train.REGISTRY_ENTRY) == "3"
    # a backfill for an earlier ds: the champion trained on part of that holdout, so it is not compared
    backfill = train.RecsysConfig(model="ease", holdout_days=10, history_days=60, ease_l2=1.0)
    backfill_ds = dt.date(2024, 2, 8)
    trained = train.train_run(settings, backfill_ds, backfill)
    earlier = train.gate(settings, backfill_ds, _register(settings, train.evaluate_run(settings, backfill_ds, trained)))
    assert not earlier["promoted"] and earlier["reason"].startswith("not compared: the champion")
    assert registry.champion_version(settings, train.REGISTRY_ENTRY) == "3"
    ease_model = train.load_recommender(settings, f"models:/{train.MODEL_NAME}@champion")
    assert isinstance(ease_model, Recommender) and ease_model.kind == "ease"

    import mlflow

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    served = client.get_model_version(train.MODEL_NAME, "2")
    assert served.tags["gate.decision"] == "baseline served" and served.tags["recsys.model"] == "popularity"
    rejected = client.get_model_version(train.MODEL_NAME, "4")
    assert rejected.tags["gate.decision"] == "rejected" and rejected.tags["gate.champion_version"] == "3"
    assert float(rejected.tags["gate.champion_value"]) > float(rejected.tags["eval.ndcg_at_10"])
    run = client.get_run(rejected.run_id)
    assert "holdout.recent_popularity.ndcg_at_10" in run.data.metrics
    assert {a.path for a in client.list_artifacts(rejected.run_id, "evaluation")} >= {"evaluation/recall_at_k.png"}

    pyfunc = mlflow.pyfunc.load_model(f"models:/{train.MODEL_NAME}@champion")
    out = pyfunc.predict(train._pyfunc_example(_events(rows[:8])), params={"k": 3})
    assert list(out.columns) == ["customer_id", "rank", "product_id", "score"] and out.groupby("customer_id").size().max() == 3


def test_a_training_run_names_the_table_versions_it_read_and_they_read_back_after_a_rerun(settings):
    """The train step tags its MLflow run with the Delta version of every table it read; after the days are
    published again with other rows, reading at that version gives the training data back exactly."""
    import json

    import mlflow

    from ml.pipeline import Run
    from ml.recsys.pipeline import RECOMMENDATIONS

    rows, ds = _chain_rows(), dt.date(2024, 2, 12)
    _publish_events(settings, _events(rows), through=ds)
    config = train.RecsysConfig(model="popularity", holdout_days=10, history_days=60)
    expected = io.load_events(settings, ds, config.history_days, config.event_types)
    train_step = next(step for step in RECOMMENDATIONS.steps if step.name == "train")
    trained = train_step.fn(Run(settings, ds, config), {})

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    versions = json.loads(client.get_run(trained["run_id"]).data.tags[registry.LAKE_VERSIONS_TAG])
    assert list(versions) == ["curated/events"] and isinstance(versions["curated/events"], int)
    _publish_events(settings, _events(_chain_rows(seed=1)), through=ds)  # the same days, other rows
    start = ds - dt.timedelta(days=config.history_days - 1)
    now = lake.read_range(settings.lake, "curated", "events", start, ds)
    assert not now.equals(expected.reset_index(drop=True))
    then = lake.read_range(settings.lake, "curated", "events", start, ds, version=versions["curated/events"])
    pd.testing.assert_frame_equal(then[then["event_type"].isin(config.event_types)].reset_index(drop=True), expected.reset_index(drop=True))
