"""Frequently bought together: baskets from the contract tables, FP-growth rules against hand-computed support,
confidence and lift, basket completion, and the pipeline publishing one set of rules per ds."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.associations import data, evaluate, model
from ml.errors import EcomError


def _tables(baskets: list[list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"o{i}" for i in range(len(baskets))]
    orders = pd.DataFrame({"order_id": ids, "order_ts": pd.date_range("2024-01-01", periods=len(ids), freq="h", tz="UTC")})
    items = pd.DataFrame([(o, p) for o, basket in zip(ids, baskets, strict=True) for p in basket], columns=["order_id", "product_id"])
    return orders, items


# 10 baskets: bread in 6, butter in 4, both in 4; jam in 3 (twice with bread); tea in 5
BASKETS = [
    ["bread", "butter"],
    ["bread", "butter", "jam"],
    ["bread", "butter", "tea"],
    ["butter", "bread"],
    ["bread", "jam"],
    ["bread", "tea"],
    ["jam", "tea"],
    ["tea"],
    ["tea"],
    ["coffee"],
]


def test_baskets_are_the_distinct_products_of_each_order_oldest_first():
    orders, items = _tables([["b", "a", "a"], ["c"]])
    found = data.baskets(orders.iloc[::-1], items)
    assert found.to_dict() == {"o0": ["a", "b"], "o1": ["c"]}
    with pytest.raises(EcomError, match="association rules need order baskets"):
        data.baskets(orders.iloc[:0], items)
    with pytest.raises(EcomError, match="none of 1 lines match an order"):
        data.baskets(orders, pd.DataFrame({"order_id": ["zz"], "product_id": ["a"]}))


def test_rules_carry_hand_computed_support_confidence_and_lift():
    rules = model.mine(data.baskets(*_tables(BASKETS)), model.RuleConfig(min_support=0.2, min_confidence=0.5, min_lift=1.0))
    got = {(r.product_id, r.associated_product_id): (r.support, r.confidence, r.lift) for r in rules.itertuples()}
    # butter -> bread: 4 of 10 baskets, 4 of butter's 4, bread in 6 of 10: lift 1 / 0.6
    assert got[("butter", "bread")] == pytest.approx((0.4, 1.0, 1 / 0.6))
    assert got[("bread", "butter")] == pytest.approx((0.4, 4 / 6, (4 / 6) / 0.4))
    # bread -> tea: support 0.2, confidence 2/6 < 0.5; tea -> bread: 2/5 < 0.5; jam -> bread 2/3, lift (2/3)/0.6 > 1
    assert ("bread", "tea") not in got and ("tea", "bread") not in got
    assert got[("jam", "bread")] == pytest.approx((0.2, 2 / 3, (2 / 3) / 0.6))
    assert list(rules.columns) == list(model.RULE_COLUMNS)
    capped = model.mine(data.baskets(*_tables(BASKETS)), model.RuleConfig(min_support=0.2, min_confidence=0.0, min_lift=0.0, max_per_product=1))
    assert capped.groupby("product_id").size().max() == 1
    assert capped.set_index("product_id").loc["bread", "associated_product_id"] == "butter"  # its highest confidence


def test_completion_takes_the_rules_as_evidence_and_popularity_as_the_prior():
    baskets = data.baskets(*_tables(BASKETS))
    rules = model.mine(baskets, model.RuleConfig(min_support=0.2, min_confidence=0.5, min_lift=1.0))
    shares = model.popularity(baskets)
    assert shares.index[:2].tolist() == ["bread", "tea"] and shares["bread"] == 0.6
    assert model.complete(["butter"], rules, 2, shares) == ["bread", "tea"]  # the rule's 1.0, then tea's 0.5 share
    assert model.complete(["coffee"], rules, 2, shares) == ["bread", "tea"]  # no rule: popularity
    assert "butter" not in model.complete(["butter", "bread"], rules, 3, shares)
    hit = evaluate.completion_hit_rate(pd.Series([["butter", "bread"], ["tea"]]), {"rules": lambda b, k: model.complete(b, rules, k, shares)}, k=1)
    assert hit == {"rules": 1.0, "baskets": 1.0}  # the single-product basket is not scored; either held-out product is recovered


def test_the_pipeline_publishes_one_set_of_rules_per_ds(settings):
    from ml import contract, ingest, lake, serving
    from ml.associations.pipeline import ASSOCIATIONS
    from ml.cli import run_pipeline
    from ml.sources import SourceRequest
    from ml.sources.synthetic import scale_config

    end = scale_config("tiny").end
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny", backfill_days=59))
    params = {"window_days": 60, "min_support": 0.001, "min_confidence": 0.01}
    first = run_pipeline(ASSOCIATIONS, end.isoformat(), params)
    again = run_pipeline(ASSOCIATIONS, end.isoformat(), params)
    assert first["publish"]["rows"] == again["publish"]["rows"] == first["steps"]["mine"]["rules"] > 0
    rows = serving.read_ds(settings.serving_url, "product_associations", end)
    assert len(rows) == again["publish"]["rows"] and not rows.duplicated(["product_id", "associated_product_id"]).any()
    stored = lake.read_partition(settings.lake, "outputs", "product_associations", end)
    assert list(stored.columns) == contract.table("product_associations").column_names and len(stored) == len(rows)
    assert ((stored["confidence"] >= 0.01) & (stored["support"] >= 0.001)).all()
