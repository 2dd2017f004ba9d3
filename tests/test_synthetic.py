"""The synthetic shop has the structure it promises, and it is reproducible."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml import contract
from ml.sources import synthetic as shop

CFG = shop.ShopConfig(n_customers=2_500, n_products=120, n_days=120, start=dt.date(2024, 10, 1), n_categories=8, seed=7)


@pytest.fixture(scope="module")
def world():
    return shop.build_world(CFG)


@pytest.fixture(scope="module")
def batch(world):
    return shop.simulate(world, CFG.start, CFG.end)


def test_tables_conform_to_the_contract(batch):
    assert set(batch.tables) == set(contract.TABLES)
    for name, frame in batch.tables.items():
        pd.testing.assert_frame_equal(frame, contract.conform(name, frame), obj=name)
        key = list(contract.table(name).key)
        assert not frame.duplicated(key).any(), f"duplicate keys in {name}"


def test_same_seed_same_rows_and_days_are_independent_of_the_range(world, batch):
    day = CFG.start + dt.timedelta(days=50)
    alone = shop.simulate(world, day, day).tables
    events = batch.tables["events"]
    same_day = events[events["event_ts"].dt.date == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone["events"].reset_index(drop=True), same_day)
    inv = batch.tables["inventory"]
    pd.testing.assert_frame_equal(alone["inventory"], inv[inv["ds"].dt.date == day].reset_index(drop=True))
    other = shop.simulate(shop.build_world(shop.ShopConfig(**{**CFG.__dict__, "seed": 8})), day, day).tables["events"]
    assert not other.equals(alone["events"])


def test_product_popularity_is_heavy_tailed(batch):
    bought = batch.tables["order_items"].groupby("product_id")["qty"].sum().sort_values(ascending=False)
    top_decile = bought.iloc[: len(bought) // 10].sum() / bought.sum()
    assert top_decile > 0.35, top_decile


def test_next_view_follows_the_complement(world, batch):
    views = batch.tables["events"].query("event_type == 'view'")
    nxt = views.groupby("session_id")["product_id"].shift(-1)
    pairs = views.assign(nxt=nxt).dropna(subset=["nxt"])
    complement = dict(zip(world.products["product_id"], world.products["product_id"].to_numpy()[world.complement], strict=False))
    share = (pairs["product_id"].map(complement) == pairs["nxt"]).mean()
    assert CFG.complement_prob * 0.8 < share < CFG.complement_prob + 0.15, share


def test_weekly_seasonality_and_black_friday(batch):
    sessions = batch.tables["events"].groupby(batch.tables["events"]["event_ts"].dt.date)["session_id"].nunique()
    sessions.index = pd.to_datetime(sessions.index)
    by_weekday = sessions.groupby(sessions.index.weekday).mean()
    assert by_weekday[5] > 1.2 * by_weekday[1]  # Saturday vs Tuesday
    assert sessions[pd.Timestamp("2024-11-29")] > 1.5 * sessions[pd.Timestamp("2024-11-22")]


def test_promotions_lift_demand(batch):
    items = batch.tables["order_items"]
    promo_units = items.loc[items["discount"] > 0, "qty"].sum()
    promos = batch.tables["promotions"]
    promo_days = ((promos["end_date"].clip(upper=pd.Timestamp(CFG.end, tz="UTC")) - promos["start_date"]).dt.days + 1).clip(lower=0).sum()
    share_of_days = promo_days / (CFG.n_products * CFG.n_days)
    assert promo_units / items["qty"].sum() > 1.3 * share_of_days


def test_coupon_experiment_matches_its_ground_truth(batch):
    camp = batch.tables["coupon_campaigns"]
    truth = batch.ground_truth["coupon_uplift"].merge(camp, on=["campaign_id", "customer_id"])
    control = truth.loc[truth["treatment"] == contract.CONTROL, "converted"].mean()
    for action in shop.COUPON_ACTIONS:
        arm = truth[truth["treatment"] == action]
        observed = arm["converted"].mean() - control
        expected = arm[f"uplift_{action}"].mean()
        se = np.sqrt(arm["converted"].var() / len(arm) + truth.loc[truth["treatment"] == contract.CONTROL, "converted"].var() / len(arm))
        assert abs(observed - expected) < 4 * se + 0.01, (action, observed, expected)
    uplift = truth["uplift_coupon_15"]
    assert (uplift > 0).any() and (uplift < 0).any(), "the deep coupon must help some customers and hurt others"


def test_stock_stays_non_negative_and_is_replenished(batch):
    inv = batch.tables["inventory"]
    assert (inv["on_hand"] >= 0).all()
    assert (inv["on_order"] > 0).mean() > 0.01


def test_addresses_sit_on_road_nodes(shared_data):
    nodes = shop.road_node_coordinates(shared_data / "osm" / "derived" / "monaco.drive.osm.bz2")
    world = shop.build_world(shop.ShopConfig(n_customers=200, n_products=20, n_days=10), nodes)
    on_road = {tuple(x) for x in nodes}
    assert all((lat, lon) in on_road for lat, lon in world.customers[["lat", "lon"]].to_numpy())
    assert all((lat, lon) in on_road for lat, lon in world.warehouses[["lat", "lon"]].to_numpy())


def test_latent_types_act_only_through_the_behaviour_parameters(world, batch):
    from dataclasses import replace

    assert "customer_types" not in batch.ground_truth and world.customer_type is None  # an untyped shop is as before
    typed_world = shop.build_world(replace(CFG, customer_types=True))
    assert typed_world.products.equals(world.products) and typed_world.customers.equals(world.customers)
    typed = shop.simulate(typed_world, CFG.start, CFG.end)
    truth = typed.ground_truth["customer_types"].set_index("customer_id")
    assert set(truth["customer_type"]) == {t.name for t in shop.CUSTOMER_TYPES}
    mean = truth.groupby("customer_type")[["activity", "basket", "taste_entropy", "sensitivity"]].mean()
    assert mean["activity"].idxmax() == "loyal" and mean["activity"].idxmin() == "occasional"
    assert mean["basket"].idxmax() == "explorer" and mean["taste_entropy"].idxmax() == "explorer"
    assert mean["sensitivity"].idxmax() == "deal_seeker"
    # what the data shows: loyal customers come more often, deal seekers buy more of their lines on promotion
    events, items, orders = typed.tables["events"], typed.tables["order_items"], typed.tables["orders"]
    sessions = events.groupby("customer_id")["session_id"].nunique().reindex(truth.index, fill_value=0)
    assert sessions.groupby(truth["customer_type"]).mean().idxmax() == "loyal"
    lines = items.merge(orders[["order_id", "customer_id"]], on="order_id").assign(customer_type=lambda f: f["customer_id"].map(truth["customer_type"]))
    promo_share = (lines["discount"] > 0).groupby(lines["customer_type"]).mean()
    assert promo_share["deal_seeker"] > 1.3 * promo_share["loyal"]
