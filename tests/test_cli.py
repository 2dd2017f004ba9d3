import datetime as dt

import pytest
from typer.testing import CliRunner

from conftest import committed_digests, export_settings, make_settings
from ml import lake
from ml.cli import app

runner = CliRunner()


def test_settings_lists_the_configuration(settings):
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 0
    assert f"home = {settings.home}" in result.output.splitlines()
    assert f"serving_url = sqlite:///{settings.home / 'serving.db'}" in result.output.splitlines()


def test_ingest_then_bad_source_gives_a_clear_error(settings):
    ok = runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-01-20", "--backfill-days", "2"])
    assert ok.exit_code == 0, ok.output
    assert dt.date(2024, 1, 20) in lake.list_partitions(settings.lake, "curated", "events")
    bad = runner.invoke(app, ["ingest", "--source", "files", "--ds", "2024-01-20"])
    assert bad.exit_code == 1 and "needs a folder" in bad.output
    unknown = runner.invoke(app, ["ingest", "--source", "erp"])
    assert unknown.exit_code == 1 and "source='erp' is not one of" in unknown.output


def test_generate_writes_the_bring_your_own_data_format_and_it_ingests(settings, tmp_path):
    out = tmp_path / "export"
    made = runner.invoke(app, ["generate", "--out", str(out), "--scale", "tiny", "--ds", "2024-02-01", "--days", "3"])
    assert made.exit_code == 0, made.output
    assert sorted(p.stem for p in out.glob("*.csv")) == sorted(
        ["customers", "products", "events", "orders", "order_items", "inventory", "warehouses", "promotions", "coupon_campaigns", "chargebacks"]
    )
    assert (out / "manifest.json").exists()  # the sender's side writes it
    (out / "notes.txt").write_text("an export log the sender left in the folder\n")
    refused = runner.invoke(app, ["ingest", "--source", "files", "--path", str(out), "--ds", "2024-02-01", "--backfill-days", "2"])
    assert refused.exit_code == 1 and "notes.txt is not a contract table's file" in " ".join(refused.output.split()), refused.output
    (out / "notes.txt").unlink()
    rewritten = runner.invoke(app, ["manifest", str(out)])
    assert rewritten.exit_code == 0 and "events.csv" in rewritten.output, rewritten.output
    ingested = runner.invoke(app, ["ingest", "--source", "files", "--path", str(out), "--ds", "2024-02-01", "--backfill-days", "2"])
    assert ingested.exit_code == 0, ingested.output
    assert len(lake.list_partitions(settings.lake, "curated", "events")) == 3


def test_recommend_runs_the_pipeline_and_explains_a_missing_lake(settings):
    missing = runner.invoke(app, ["recommend", "--model", "popularity"])
    assert missing.exit_code == 1 and "no curated events partition under" in " ".join(missing.output.split())
    ok = runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-03-01", "--backfill-days", "59"])
    assert ok.exit_code == 0, ok.output
    done = runner.invoke(app, ["recommend", "--model", "popularity", "--k", "5", "--shards", "2"])
    assert done.exit_code == 0, done.output
    from ml import serving

    rows = serving.read_ds(settings.serving_url, "recommendations", "2024-03-01")
    # popularity is the baseline itself, so it is not promoted: the baseline registered beside it (v2) is served
    assert len(rows) == rows["customer_id"].nunique() * 5 and set(rows["model_version"]) == {"2"}
    assert "the baseline is served instead (v2)" in " ".join(done.output.split())


def test_forecast_then_plan_from_the_command_line(settings):
    missing = runner.invoke(app, ["plan"])
    assert missing.exit_code == 1 and "run the pipeline that writes demand_forecasts first" in " ".join(missing.output.split())
    assert runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-03-01", "--backfill-days", "59"]).exit_code == 0
    args = ["forecast", "--model", "seasonal_naive", "--horizon", "7", "--origins", "2", "--origin-step", "7", "--shards", "1"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    from ml import serving

    forecasts = serving.read_ds(settings.serving_url, "demand_forecasts", "2024-03-01")
    assert len(forecasts) == 7 * len(forecasts[["product_id", "warehouse_id"]].drop_duplicates()) > 0
    # seasonal naive as the candidate is the baseline itself: not promoted, the registered baseline (v2) is served
    assert set(forecasts["model_version"]) == {"2"} and "does not beat the baseline's (seasonal naive)" in " ".join(done.output.split())
    planned = runner.invoke(app, ["plan", "--service-level", "0.9", "--time-limit-s", "30"])
    assert planned.exit_code == 0, planned.output
    assert '"status": "optimal"' in planned.output or '"status": "within_gap"' in planned.output
    bad = runner.invoke(app, ["plan", "--budget", "-5"])
    assert bad.exit_code == 1 and "budget=-5.0 must be at least 0" in bad.output


def test_forecast_held_to_ets_serves_ets_when_nothing_beats_it(settings):
    """With ets_baseline, the bar is the better of seasonal naive and ETS; on the tiny shop ETS is the better, so a
    seasonal-naive candidate loses to it and ETS is registered and served."""
    import mlflow

    from ml import serving

    assert runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-03-01", "--backfill-days", "59"]).exit_code == 0
    args = ["forecast", "--model", "seasonal_naive", "--ets-baseline", "--horizon", "7", "--origins", "2", "--origin-step", "7", "--shards", "1"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    candidate, served = client.get_model_version("ecom_demand_forecaster", "1"), client.get_model_version("ecom_demand_forecaster", "2")
    assert float(candidate.tags["backtest.ets.mase"]) < float(candidate.tags["backtest.seasonal_naive.mase"])
    assert "does not beat the baseline's (ETS)" in candidate.tags["gate.reason"]
    assert served.tags["forecast.model"] == "ets" and served.tags["gate.decision"] == "baseline served"
    assert set(serving.read_ds(settings.serving_url, "demand_forecasts", "2024-03-01")["model_version"]) == {"2"}


def test_intervene_explains_too_few_campaigns_and_plans_with_caps(settings):
    assert runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-03-30", "--backfill-days", "89"]).exit_code == 0
    short = runner.invoke(app, ["intervene"])
    assert short.exit_code == 1 and "cannot hold out 3 and still train" in " ".join(short.output.split())
    done = runner.invoke(app, ["intervene", "--holdout-campaigns", "1", "--budget", "15", "--caps", "0,4"])
    assert done.exit_code == 0, done.output
    from ml import serving

    rows = serving.read_ds(settings.serving_url, "interventions", "2024-03-30")
    assert 0 < len(rows) <= 4 and set(rows["action"]) == {"coupon_15"} and rows["expected_spend"].sum() <= 15
    bad = runner.invoke(app, ["intervene", "--caps", "1"])
    assert bad.exit_code == 1 and "one entry per action" in " ".join(bad.output.split())


def test_route_explains_a_missing_road_network_and_routes_tomorrow(settings, tmp_path):
    assert runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-03-30", "--backfill-days", "6"]).exit_code == 0
    missing = runner.invoke(app, ["route", "--road-network", str(tmp_path / "nowhere.osm.pbf")])
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())
    unknown = runner.invoke(app, ["route", "--depot", "W9"])
    assert unknown.exit_code == 1 and "'W9' is not a warehouse" in " ".join(unknown.output.split())
    done = runner.invoke(app, ["route", "--time-limit-s", "1", "--fleet-size", "2"])
    assert done.exit_code == 0, done.output
    from ml import serving

    routes = serving.read_ds(settings.serving_url, "delivery_routes", "2024-03-30")
    assert len(routes) > 0 and routes.groupby("depot_id")["vehicle_id"].nunique().max() <= 2
    assert lake.read_partition_file(settings.lake, "outputs", "delivery_maps", "2024-03-30", "routes.html") is not None


def _weekly_source(folder, weeks: int, last: str):
    """A bring-your-own folder that reports sales once a week (every Monday): one order per week, one line per
    product, demand with a yearly cycle."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    mondays = pd.date_range(end=pd.Timestamp(last), periods=weeks, freq="7D")
    products = [f"SKU{i}" for i in range(4)]
    cycle = 20 + 8 * np.sin(2 * np.pi * np.arange(weeks) / 52)
    qty = rng.poisson(np.outer([1.0, 1.5, 2.0, 3.0], cycle)) + 1.0
    folder.mkdir()
    pd.DataFrame({"product_id": products, "category": "pharmacy"}).to_csv(folder / "products.csv", index=False)
    order_ids = [f"W{d:%Y%m%d}" for d in mondays]
    pd.DataFrame({"order_id": order_ids, "order_ts": [f"{d:%Y-%m-%d}T18:00:00Z" for d in mondays]}).to_csv(folder / "orders.csv", index=False)
    lines = pd.DataFrame({"order_id": np.tile(order_ids, len(products)), "product_id": np.repeat(products, weeks), "qty": qty.ravel()})
    lines.to_csv(folder / "order_items.csv", index=False)
    return mondays, qty


def test_a_weekly_source_is_forecast_and_scored_per_week(settings, tmp_path):
    """A source that reports weekly is forecast in weeks (the 28-day horizon is 4 weeks, targets 7 days apart),
    its seasonal naive repeats the same weeks a year back, and the backtest scores weeks (MASE by hand below)."""
    import json
    from pathlib import Path

    import mlflow
    import numpy as np
    import pandas as pd

    from ml import serving

    weeks, last = 70, "2024-06-03"
    mondays, qty = _weekly_source(tmp_path / "weekly", weeks, last)
    assert runner.invoke(app, ["manifest", str(tmp_path / "weekly")]).exit_code == 0
    days = (mondays[-1] - mondays[0]).days
    ingested = runner.invoke(app, ["ingest", "--source", "files", "--path", str(tmp_path / "weekly"), "--ds", last, "--backfill-days", str(days)])
    assert ingested.exit_code == 0, ingested.output
    args = ["forecast", "--model", "seasonal_naive", "--horizon", "28", "--origins", "2", "--origin-step", "14", "--shards", "1", "--ds", last]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output

    forecasts = serving.read_ds(settings.serving_url, "demand_forecasts", last).sort_values(["product_id", "target_date"])
    targets = [str(d.date()) for d in pd.date_range(pd.Timestamp(last) + pd.Timedelta(days=7), periods=4, freq="7D")]
    got = forecasts.groupby("product_id")["target_date"].apply(list)
    assert len(forecasts) == 4 * 4 and all(sorted(map(str, g)) == targets for g in got), got.iloc[0]
    np.testing.assert_allclose(forecasts["p50"].to_numpy(), qty[:, weeks - 52 : weeks - 48].ravel())  # a year back, per week

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    version = client.get_model_version("ecom_demand_forecaster", "1")
    assert version.tags["forecast.frequency"] == "weekly" and "h=4w" in version.tags["eval.holdout"] and "every 2w" in version.tags["eval.holdout"]
    backtest = json.loads(Path(client.download_artifacts(version.run_id, "evaluation/backtest.json", str(tmp_path))).read_text())
    assert backtest["origins"] == [str(mondays[weeks - 6].date()), str(mondays[weeks - 4].date())]
    mase = []
    for origin in (weeks - 6, weeks - 4):  # seasonal naive's own MASE, per week, with the 52-week scale
        scale = np.abs(qty[:, 52:origin] - qty[:, : origin - 52]).mean(axis=1)
        mase.append(np.abs(qty[:, origin : origin + 4] - qty[:, origin - 52 : origin - 48]).mean(axis=1) / scale)
    assert backtest["model"]["mase"] == pytest.approx(np.mean(mase))


def test_history_lands_in_bounded_drops_with_the_same_fact_rows_as_one_drop(settings, tmp_path, monkeypatch):
    from ml import contract
    from ml.settings import get_settings

    chunked = runner.invoke(app, ["history", "--scale", "tiny", "--days", "40", "--end", "2024-06-30", "--drop-days", "15"])
    assert chunked.exit_code == 0, chunked.output
    assert "history loaded in 3 drop(s) 2024-05-22..2024-06-30" in " ".join(chunked.output.split())
    drops = [d.isoformat() for d in lake.list_partitions(settings.lake, "raw", "drop")]
    assert drops == ["2024-06-05", "2024-06-20", "2024-06-29", "2024-06-30"]

    export_settings(make_settings(tmp_path / "one_drop"), monkeypatch)
    whole = runner.invoke(app, ["history", "--scale", "tiny", "--days", "40", "--end", "2024-06-30", "--drop-days", "40"])
    assert whole.exit_code == 0, whole.output
    facts = {name for name, spec in contract.TABLES.items() if spec.kind == "fact"}

    def fact_rows(lake_dir):
        return {key: digest for key, digest in committed_digests(lake_dir, "curated").items() if key.split("/")[0] in facts}

    chunked_rows = fact_rows(settings.lake)
    assert len(chunked_rows) == 40 * len(facts)
    assert chunked_rows == fact_rows(get_settings().lake)
