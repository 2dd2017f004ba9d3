"""Customer segments: RFM quintiles by hand, centroid matching, k chosen on the data with labels kept from day to
day, plain names, the intervention's segment filter and cap, and the pipeline publishing both tables and the
report once per ds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import EcomError
from ml.intervention import optimize
from ml.segments import data, model


def test_rfm_scores_quintiles_among_buyers_and_one_for_the_rest():
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(11)],
            "days_since_order": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan],
            "orders_365d": [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
            "spend_365d": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.0],
        }
    )
    codes = data.rfm(features).set_index("customer_id")
    assert codes.loc["c0", "rfm_code"] == "551"  # most recent, most orders, least spent
    assert codes.loc["c9", "rfm_code"] == "115"
    assert codes.loc["c10", "rfm_code"] == "111"  # no order in the lookback
    assert codes.loc[[f"c{i}" for i in range(10)], "r"].value_counts().eq(2).all()  # every quintile filled


def test_match_keeps_yesterdays_numbers_and_numbers_new_components_after_them():
    previous = pd.DataFrame([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]], index=pd.Index([4, 7, 9], name="segment"))
    today = np.array([[10.2, 0.1], [0.1, -0.2], [5.1, 4.8], [20.0, 20.0]])
    assert model.match(today, previous) == [9, 4, 7, 10]
    assert model.match(today[:2], None) == [0, 1]


def _blobs(seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0, 0], [4, 4, 0, 0, 0], [0, 4, 4, 4, 0]], dtype=float)
    points = np.vstack([c + shift + rng.normal(0, 0.5, (300, 5)) for c in centres])
    return pd.DataFrame(points, columns=list(data.CLUSTER_FEATURES)).assign(customer_id=[f"c{i}" for i in range(900)], truth=np.repeat([0, 1, 2], 300))


def test_k_is_chosen_on_the_data_and_labels_stay_from_day_to_day():
    from sklearn.metrics import adjusted_rand_score

    config = model.ClusterConfig(k_min=2, k_max=5, stability_fits=2)
    today = _blobs(0)
    first = model.cluster(today, config)
    assert first.k == 3 and set(first.stability) == {2, 3, 4, 5} and not first.warm_started
    assert adjusted_rand_score(today["truth"], first.segment.to_numpy()) > 0.95
    # the next day: the same customers, a little drift, and yesterday's numbers permuted on purpose
    permuted = first.centroids.rename(index={0: 5, 1: 3, 2: 8})
    second = model.cluster(_blobs(1, shift=0.05), config, permuted)
    assert second.warm_started and sorted(second.centroids.index) == [3, 5, 8]
    renamed = first.segment.map({0: 5, 1: 3, 2: 8})
    assert (second.segment == renamed).mean() > 0.97
    with pytest.raises(EcomError, match="too few for 2 segments"):
        model.cluster(today.head(15), config)


def test_segment_names_describe_the_profile_against_the_shop():
    stats = pd.DataFrame(
        {
            "customers": [100, 100, 100],
            "spend": [900.0, 100.0, 100.0],
            "order_rate": [3.0, 0.2, 1.0],
            "churn_risk": [0.2, 0.95, 0.3],
            "log_session_rate": [0.0, 0.0, 0.0],
            "log_views_per_session": [1.0, 1.0, 1.0],
            "category_entropy": [1.0, 1.0, 1.0],
            "promo_line_share": [0.1, 0.1, 0.3],
            "log_order_rate": [0.0, 0.0, 0.0],
        },
        index=pd.Index([0, 1, 2], name="segment"),
    )
    assert model.names(stats) == {0: "frequent high-value", 1: "lapsing low-value", 2: "regular low-value deal-seeking"}
    twins = model.names(pd.concat([stats.iloc[[0]], stats.iloc[[0]].set_axis([5])]))
    assert twins == {0: "regular mid-value #0", 5: "regular mid-value #5"}


def test_the_plan_caps_customers_per_segment_and_filters_segments():
    from ml.intervention.pipeline import InterventionConfig
    from ml.intervention.target import segment_filter

    profit = np.array([[5.0], [4.0], [3.0], [2.0]])
    spend = np.ones_like(profit)
    groups = np.array(["a", "a", "a", "b"], dtype=object)
    chosen = optimize.assign(profit, spend, optimize.Limits(10.0, (None,), segment_cap=1), np.ones(4, dtype=bool), groups=groups)
    assert chosen.choice.tolist() == [0, -1, -1, 0]  # the best of segment a and the only one of b

    scores = pd.DataFrame({"customer_id": ["x", "y", "z"]})
    segments = pd.DataFrame({"customer_id": ["x", "y"], "segment": [0, 3], "segment_name": ["loyal", "lapsing"]})
    names, allowed = segment_filter(scores, segments, InterventionConfig(segments=("3",)), "2024-01-01")
    assert names.tolist() == ["loyal", "lapsing", "unsegmented"] and allowed.tolist() == [False, True, False]
    assert segment_filter(scores, segments, InterventionConfig(segments=("loyal",)), "2024-01-01")[1].tolist() == [True, False, False]
    with pytest.raises(EcomError, match=r"segments \['gold'\] are not in customer_segments"):
        segment_filter(scores, segments, InterventionConfig(segments=("gold",)), "2024-01-01")
    with pytest.raises(EcomError, match="run ecom_segments"):
        segment_filter(scores, None, InterventionConfig(segment_cap=5), "2024-01-01")


def test_the_pipeline_publishes_segments_profiles_and_report_once_per_ds(settings):
    import datetime as dt

    from ml import contract, ingest, lake, serving
    from ml.cli import run_pipeline
    from ml.segments.pipeline import SEGMENTS
    from ml.sources import SourceRequest
    from ml.sources.synthetic import scale_config

    end = scale_config("tiny").end
    before = end - dt.timedelta(days=1)
    ingest.run_day(settings, SourceRequest("synthetic", before, scale="tiny", backfill_days=58))
    ingest.run_day(settings, SourceRequest("synthetic", end, scale="tiny"))
    params = {"k_max": 4, "stability_fits": 2}
    first = run_pipeline(SEGMENTS, before.isoformat(), params)
    assert first["steps"]["segment"]["matched_to"] is None
    today = run_pipeline(SEGMENTS, end.isoformat(), params)
    again = run_pipeline(SEGMENTS, end.isoformat(), params)
    assert today["steps"]["segment"]["matched_to"] == again["steps"]["segment"]["matched_to"] == before.isoformat()
    assert today["publish"]["rows"] == again["publish"]["rows"] > 100
    for table, key in (("customer_segments", ["customer_id"]), ("segment_profiles", ["segment"])):
        served = serving.read_ds(settings.serving_url, table, end)
        stored = lake.read_partition(settings.lake, "outputs", table, end)
        assert list(stored.columns) == contract.table(table).column_names and len(stored) == len(served)
        assert not served.duplicated(key).any()
    segments = lake.read_partition(settings.lake, "outputs", "customer_segments", end)
    profiles = lake.read_partition(settings.lake, "outputs", "segment_profiles", end).set_index("segment")
    assert profiles["customers"].sum() == len(segments) and profiles["revenue_share"].sum() == pytest.approx(1.0)
    assert (segments["segment_name"] == segments["segment"].map(profiles["segment_name"])).all()
    report = lake.read_text(settings.lake, "outputs", "customer_segments", end, "report.html")
    assert report.count("<img") == 3 and "Customer segments" in report
