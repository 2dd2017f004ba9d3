"""Demand forecasting: the demand panel, metrics against hand-computed values, baselines, and a global LightGBM
that learns without looking past its origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import ConfigError, EcomError
from ml.forecast import baselines, data, ensemble, evaluate, train
from ml.forecast.lgbm import GlobalLGBM, LGBMConfig, origin_features
from ml.forecast.model import Forecaster
from ml.forecast.train import ForecastConfig


def test_demand_panel_fills_missing_days_with_zeros():
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "warehouse_id": [pd.NA, pd.NA, "W1"],
            "order_ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-03 11:00", "2024-01-03 12:00"], utc=True),
        }
    )
    items = pd.DataFrame({"order_id": ["o1", "o1", "o2", "o3"], "product_id": ["a", "b", "a", "a"], "qty": [2.0, 1.0, 0.5, 4.0]})
    panel = data.demand_panel(orders, items)
    assert list(panel.dates.strftime("%m-%d")) == ["01-01", "01-02", "01-03"]
    got = {(p, w): v.tolist() for p, w, v in zip(panel.keys["product_id"], panel.keys["warehouse_id"], panel.values, strict=True)}
    assert got == {("a", data.ALL_WAREHOUSES): [2.0, 0.0, 0.5], ("a", "W1"): [0.0, 0.0, 4.0], ("b", data.ALL_WAREHOUSES): [1.0, 0.0, 0.0]}


def _orders_on(days: list[str], qty: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"o{i}" for i in range(len(days))]
    orders = pd.DataFrame({"order_id": ids, "warehouse_id": "W1", "order_ts": pd.to_datetime(days, utc=True) + pd.Timedelta(hours=9)})
    return orders, pd.DataFrame({"order_id": ids, "product_id": "a", "qty": qty})


def test_sales_reported_weekly_make_a_weekly_panel_that_keeps_its_dates():
    mondays = ["2024-01-01", "2024-01-08", "2024-01-22", "2024-01-29"]  # 2024-01-15: a week without sales
    panel = data.demand_panel(*_orders_on(mondays, [3.0, 4.0, 5.0, 6.0]), end="2024-02-07")
    assert panel.frequency == data.WEEKLY
    assert list(panel.dates.strftime("%m-%d")) == ["01-01", "01-08", "01-15", "01-22", "01-29", "02-05"]  # zeros through ds
    assert panel.values.tolist() == [[3.0, 4.0, 0.0, 5.0, 6.0, 0.0]]
    back = data.from_long(data.to_long(panel), data.WEEKLY)
    assert back.dates.equals(panel.dates) and back.values.tolist() == panel.values.tolist()
    with pytest.raises(EcomError, match="not whole weekly periods apart"):
        data.from_long(data.to_long(data.demand_panel(*_orders_on(["2024-01-01", "2024-01-03"], [1.0, 1.0]))), data.WEEKLY)


def test_daily_sales_grouped_into_weeks_keep_only_whole_weeks():
    days = [str(d.date()) for d in pd.date_range("2024-01-03", "2024-01-21")]  # a Wednesday to a Sunday
    panel = data.demand_panel(*_orders_on(days, [1.0] * len(days)), frequency=data.WEEKLY)
    assert data.infer_frequency(pd.DatetimeIndex(days)) == data.DAILY
    assert list(panel.dates.strftime("%m-%d")) == ["01-14", "01-21"] and panel.values.tolist() == [[7.0, 7.0]]  # 01-03..01-07 is partial


def test_a_weekly_forecaster_forecasts_weeks_with_a_yearly_season():
    rng = np.random.default_rng(3)
    weeks = pd.date_range("2021-01-04", periods=160, freq="7D")
    season = 10 + 5 * np.sin(2 * np.pi * np.arange(160) / 52)
    values = rng.poisson(np.outer(rng.uniform(1, 4, 6), season)).astype(float)
    panel = data.Panel(pd.DataFrame({"product_id": [f"p{i}" for i in range(6)], "warehouse_id": "W1"}), weeks, values, frequency=data.WEEKLY)
    naive = Forecaster.fit("seasonal_naive", panel, 4).forecast(panel)
    np.testing.assert_array_equal(naive.p50, values[:, -52:-48])  # the same weeks a year earlier
    forecaster = Forecaster.fit("lgbm", panel, 4, LGBMConfig(n_estimators=40, threads=1))
    assert forecaster.lgbm is not None and forecaster.lgbm.config.season == 52 and forecaster.frequency == "weekly"
    rows = forecaster.forecast_rows(panel)
    assert sorted(set(rows["target_date"])) == [d.date() for d in pd.date_range(weeks[-1] + pd.Timedelta(days=7), periods=4, freq="7D")]
    config = ForecastConfig(horizon=28, origins=2, origin_step=14)
    assert train.horizon(panel, config) == 4 and train.origins(panel, config) == [154, 156]
    with pytest.raises(ConfigError, match="a weekly forecaster cannot read a daily demand panel"):
        forecaster.forecast(data.Panel(panel.keys, pd.date_range("2024-01-01", periods=160), values))


def test_the_ensemble_gives_smooth_series_to_ets_and_intermittent_ones_to_lightgbm():
    values, dates = _weekly_panel(n_series=4, n_days=200)
    values[2:, :] *= np.random.default_rng(1).random(values[2:].shape) < 0.2  # two intermittent series
    assert ensemble.smooth(values, ensemble.SBC_ZERO_SHARE).tolist() == [True, True, False, False]
    panel = data.Panel(pd.DataFrame({"product_id": list("abcd"), "warehouse_id": "W1"}), dates, values)
    config = LGBMConfig(n_estimators=40, threads=1)
    fitted = Forecaster.fit("ensemble", panel, 14, config)
    assert fitted.boundary is not None and fitted.boundary.chosen_on == f"validation {dates[-14].date()}..{dates[-1].date()}"
    chosen = ensemble.smooth(values, fitted.boundary.zero_share)
    assert chosen[:2].all()  # the smooth series go to ETS whatever the boundary
    both = fitted.forecast(panel)
    np.testing.assert_allclose(both.values[:, chosen], baselines.ets(values[chosen], 14, workers=1).values)
    np.testing.assert_allclose(both.values[:, ~chosen], Forecaster.fit("lgbm", panel, 14, config).forecast(panel).values[:, ~chosen])
    short = ensemble.choose_boundary(values[:, :80], dates[:80], 14, 7, config)  # no room to fit LightGBM before a validation window
    assert short.zero_share == ensemble.SBC_ZERO_SHARE and short.chosen_on.startswith("SBC cut-off")


def test_metrics_match_hand_computed_values():
    history = np.array([[1.0, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8]])  # seasonal naive in-sample error: 1 every day
    actual = np.array([[10.0, 10.0]])
    forecast = evaluate.Forecast(np.array([[[8.0, 11.0]], [[9.0, 12.0]], [[12.0, 13.0]]]))
    m = evaluate.score(history, actual, forecast)
    assert m["mase"][0] == pytest.approx((1 + 2) / 2 / 1.0)
    assert m["rmsse"][0] == pytest.approx(np.sqrt((1 + 4) / 2 / 1.0))
    pinball = np.mean([np.mean([0.1 * 2, 0.9 * 1]), np.mean([0.5 * 1, 0.5 * 2]), np.mean([0.1 * 2, 0.1 * 3])])  # P90 above the actual
    assert m["pinball"][0] == pytest.approx(pinball)
    assert m["coverage"][0] == 0.5  # day 2: 10 < P10 = 11
    assert evaluate.rolling_origins(100, 10, 3, 7) == [76, 83, 90]


def _weekly_panel(n_series=30, n_days=300, seed=0):
    rng = np.random.default_rng(seed)
    profile = np.array([1.0, 1.2, 0.9, 1.1, 1.6, 2.4, 0.5])
    level = rng.uniform(2, 40, n_series)[:, None]
    mean = level * profile[np.arange(n_days) % 7]
    return rng.poisson(mean).astype(float), pd.date_range("2023-01-02", periods=n_days, freq="D")


def test_seasonal_naive_repeats_last_week_and_its_interval_has_no_width_on_a_pure_cycle():
    cycle = np.tile(np.arange(7, dtype=float), 30)[None, :]
    fc = baselines.seasonal_naive(cycle, 10)
    assert fc.p50[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    np.testing.assert_array_equal(fc.values[0], fc.values[2])


def test_lightgbm_features_only_use_the_past():
    values, dates = _weekly_panel(n_series=3, n_days=120)
    before, _ = origin_features(values, 100, 14, dates)
    changed = values.copy()
    changed[:, 100:] = 1e6
    after, _ = origin_features(changed, 100, 14, dates)
    pd.testing.assert_frame_equal(before, after)


def test_global_lightgbm_beats_seasonal_naive_with_a_calibrated_interval():
    values, dates = _weekly_panel()
    origin, horizon = 272, 28
    history, actual = values[:, :origin], values[:, origin : origin + horizon]
    model = GlobalLGBM(LGBMConfig(n_estimators=150, threads=1)).fit(history, dates[:origin], horizon)
    lgbm = evaluate.score(history, actual, model.predict(history, dates[:origin], horizon))
    naive = evaluate.score(history, actual, baselines.seasonal_naive(history, horizon))
    assert np.nanmean(lgbm["mase"]) < 0.85 * np.nanmean(naive["mase"])
    assert 0.7 <= lgbm["coverage"].mean() <= 0.9
    assert (model.widen >= 0).all() and len(model.widen) == horizon


def test_ets_gives_ordered_quantiles():
    values, _ = _weekly_panel(n_series=2, n_days=120)
    fc = baselines.ets(values, 14, workers=1)
    assert fc.values.shape == (3, 2, 14)
    assert (fc.values[0] <= fc.values[1]).all() and (fc.values[1] <= fc.values[2]).all()


def _panel(values: np.ndarray, dates: pd.DatetimeIndex) -> data.Panel:
    keys = pd.DataFrame({"product_id": [f"P{i}" for i in range(len(values))], "warehouse_id": "W0"})
    return data.Panel(keys, dates, values)


def test_demand_rows_round_trip_and_missing_days_are_zeros():
    values, dates = _weekly_panel(n_series=3, n_days=20)
    panel = _panel(values, dates)
    rows = data.to_long(panel)
    back = data.from_long(rows.sample(frac=1.0, random_state=0))
    np.testing.assert_array_equal(back.values, panel.values)
    assert back.keys.equals(panel.keys) and back.dates.equals(panel.dates)
    holes = data.from_long(rows[(rows["product_id"] != "P1") | (rows["day"] != dates[5])])
    assert holes.values[1, 5] == 0.0
    with pytest.raises(EcomError, match="lack columns"):
        data.from_long(rows.drop(columns="qty"))


def test_a_fitted_forecaster_keeps_each_series_identity_and_forecasts_new_ones():
    values, dates = _weekly_panel(n_series=6, n_days=200)
    panel = _panel(values, dates)
    forecaster = Forecaster.fit("lgbm", panel, 14, LGBMConfig(n_estimators=40, threads=1))
    rows = forecaster.forecast_rows(panel).set_index(["product_id", "target_date"])
    # the same series in another order, plus one the model never saw, give the same numbers for the known ones
    order = [4, 0, 5, 2, 1, 3]
    shuffled = data.Panel(
        pd.concat([panel.keys.iloc[order], pd.DataFrame({"product_id": ["NEW"], "warehouse_id": ["W0"]})], ignore_index=True),
        dates,
        np.vstack([values[order], values[:1] * 0.5]),
    )
    again = forecaster.forecast_rows(shuffled).set_index(["product_id", "target_date"])
    pd.testing.assert_frame_equal(again.loc[rows.index], rows)
    new = again.loc["NEW"]
    assert len(new) == 14 and (new["p10"] <= new["p50"]).all() and (new["p50"] <= new["p90"]).all()
    assert str(rows.index.get_level_values("target_date").min()) == str((dates[-1] + pd.Timedelta(days=1)).date())


def test_a_history_too_short_for_the_backtest_is_a_clear_error():
    values, dates = _weekly_panel(n_series=2, n_days=80)
    config = ForecastConfig(model="lgbm", horizon=14, origins=3, origin_step=7)
    with pytest.raises(EcomError, match=r"\(80 days\) is too short for the lgbm backtest.*LightGBM needs 70"):
        train.origins(_panel(values, dates), config)
    assert len(train.origins(_panel(values, dates), ForecastConfig(model="seasonal_naive", horizon=14, origins=3, origin_step=7))) == 3
    with pytest.raises(ConfigError, match="not one of"):
        ForecastConfig(model="prophet")


def test_promotion_calendar_covers_planned_days_and_every_warehouse_of_a_product():
    keys = pd.DataFrame({"product_id": ["a", "a", "b", "c"], "warehouse_id": ["W0", "W1", "W0", "W0"]})
    promotions = pd.DataFrame(
        {
            "product_id": ["a", "a", "b", "z"],
            "start_date": pd.to_datetime(["2024-01-02", "2024-01-03", "2023-12-30", "2024-01-01"], utc=True),
            "end_date": pd.to_datetime(["2024-01-04", "2024-01-05", "2024-01-01", "2024-01-09"], utc=True),
            "discount": [0.1, 0.3, 0.2, 0.5],
        }
    )
    calendar = data.promotion_calendar(promotions, keys, pd.Timestamp("2024-01-01"), 6)
    np.testing.assert_allclose(calendar, [[0, 0.1, 0.3, 0.3, 0.3, 0], [0, 0.1, 0.3, 0.3, 0.3, 0], [0.2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], atol=1e-7)


def test_promotion_features_read_the_planned_target_day_and_nothing_beyond_the_horizon():
    values, dates = _weekly_panel(n_series=2, n_days=120)
    discount = np.zeros((2, 150), dtype=np.float32)
    discount[0, 105] = 0.3  # planned for the 6th target day
    frame, _ = origin_features(values, 100, 14, dates, discount=discount)
    assert frame["discount_target"].to_numpy()[:14].tolist() == pytest.approx([0, 0, 0, 0, 0, 0.3] + [0] * 8)
    later = discount.copy()
    later[:, 114:] = 0.9  # after the last target day
    pd.testing.assert_frame_equal(frame, origin_features(values, 100, 14, dates, discount=later)[0])


def test_demand_rows_carry_the_promotion_calendar_past_the_last_day():
    values, dates = _weekly_panel(n_series=2, n_days=20)
    discount = np.random.default_rng(0).choice([0.0, 0.2], size=(2, 30)).astype(np.float32)
    panel = data.Panel(_panel(values, dates).keys, dates, values, discount)
    back = data.from_long(data.to_long(panel).sample(frac=1.0, random_state=1))
    assert back.dates.equals(dates) and back.values.shape == values.shape
    np.testing.assert_array_equal(back.values, values)
    np.testing.assert_allclose(back.discount, discount)


def test_lightgbm_learns_the_lift_of_planned_promotions():
    """Demand doubles under a 30% promotion: with the calendar the global model forecasts the promoted days;
    without it, it cannot know them."""
    values, dates = _weekly_panel(n_series=40, n_days=330)
    rng = np.random.default_rng(3)
    discount = np.zeros((40, 360), dtype=np.float32)
    for series in range(40):
        for start in rng.choice(340, 6, replace=False):
            discount[series, start : start + 5] = 0.3
    lifted = np.round(values * (1 + 3.5 * discount[:, :330]))
    origin, horizon = 302, 28
    history, actual = lifted[:, :origin], lifted[:, origin : origin + horizon]
    config = LGBMConfig(n_estimators=150, threads=1)
    with_promos = GlobalLGBM(config).fit(history, dates[:origin], horizon, discount).predict(history, dates[:origin], horizon, discount=discount)
    without = GlobalLGBM(config).fit(history, dates[:origin], horizon).predict(history, dates[:origin], horizon)
    promoted = discount[:, origin : origin + horizon] > 0
    error = {name: np.abs(fc.values[1] - actual)[promoted].mean() for name, fc in (("with", with_promos), ("without", without))}
    assert promoted.sum() > 20 and error["with"] < 0.6 * error["without"], error


def test_the_pyfunc_reads_the_promotion_calendar_from_its_input_rows():
    from ml.forecast.model import pyfunc_model

    values, dates = _weekly_panel(n_series=12, n_days=200)
    discount = np.zeros((12, 230), dtype=np.float32)
    for start in range(3, 200, 17):
        discount[:, start : start + 4] = 0.3
    discount[:, 202:206] = 0.3  # planned inside the horizon
    values = np.round(values * (1 + 3.5 * discount[:, :200]))
    panel = data.Panel(_panel(values, dates).keys, dates, values, discount)
    forecaster = Forecaster.fit("lgbm", panel, 14, LGBMConfig(n_estimators=60, threads=1))
    served = pyfunc_model(forecaster).predict(None, data.to_long(panel)).sort_values(["product_id", "target_date"])
    direct = forecaster.forecast_rows(panel).sort_values(["product_id", "target_date"])
    np.testing.assert_allclose(served[["p10", "p50", "p90"]].to_numpy(), direct[["p10", "p50", "p90"]].to_numpy())
    unplanned = forecaster.forecast_rows(data.Panel(panel.keys, dates, values)).sort_values(["product_id", "target_date"])
    promoted = pd.to_datetime(direct["target_date"]).isin(pd.date_range(dates[0] + pd.Timedelta(days=202), periods=4))
    assert (direct["p50"].to_numpy()[promoted] > 1.5 * unplanned["p50"].to_numpy()[promoted]).mean() > 0.9  # no calendar: no lift


def test_the_gate_holds_a_forecaster_to_the_better_of_its_baselines():
    from ml.forecast import train
    from ml.forecast.pipeline import ForecastConfig

    assert train.baselines_of(ForecastConfig()) == ("seasonal_naive",)
    assert train.baselines_of(ForecastConfig(ets_baseline=True)) == ("seasonal_naive", "ets")
    metrics = {"model": {"mase": 0.7}, "seasonal_naive": {"mase": 1.2}}
    assert train.strongest_baseline(metrics) == ("seasonal_naive", 1.2)
    assert train.strongest_baseline(metrics | {"ets": {"mase": 0.9}}) == ("ets", 0.9)
    assert train.strongest_baseline(metrics | {"ets": {"mase": 1.3}}) == ("seasonal_naive", 1.2)
    backtests = {
        "model": {"mase": 0.7, "wrmsse": 0.80, "pinball": 0.21},
        "seasonal_naive": {"mase": 1.2, "wrmsse": 0.88, "pinball": 0.25},
        "ets": {"mase": 2.1, "wrmsse": 0.73, "pinball": 0.22},
    }
    # the bar on MASE is seasonal naive; on WRMSSE and pinball it is the best baseline on each, here ETS
    assert [(g.metric, g.baseline_name, g.baseline_value, g.holds()[0]) for g in train.guards(backtests)] == [
        ("wrmsse", "ETS", 0.73, False),
        ("pinball", "ETS", 0.22, True),
    ]
    # after XCom an undefined WRMSSE (no sales in the window) is null: it guards nothing
    unmeasured = {who: m | {"wrmsse": None} for who, m in backtests.items()}
    assert [g.metric for g in train.guards(unmeasured)] == ["pinball"]
