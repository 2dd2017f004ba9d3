"""``ecom``: run any pipeline step outside Airflow.

    ecom demo                         # the main job on embedded defaults (synthetic shop, SQLite, local lake)
    ecom ingest --source bakery       # land -> validate -> publish one drop
    ecom land / validate / publish    # the ingest steps one at a time, as the DAG runs them
    ecom recommend --model sasrec     # train -> evaluate -> register -> gate -> score, as ecom_recommendations runs
    ecom forecast --model lgbm        # fit -> backtest -> register -> gate -> forecast, as ecom_demand_forecast runs
    ecom plan --service-level 0.95    # one replenishment MILP per warehouse -> purchase_orders, as ecom_inventory_plan runs
    ecom generate --out DIR           # the synthetic shop as contract CSV files (bring-your-own-data format)
    ecom settings                     # the configuration in force
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from ml.errors import EcomError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

SourceOpt = Annotated[str, typer.Option(help="synthetic | files | amazon_beauty | amazon_instruments | movielens_100k | bakery | pharma | hillstrom")]
DsOpt = Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD (default: the source's last day)")]
ScaleOpt = Annotated[str | None, typer.Option(help="synthetic shop size: tiny | demo | large (default ECOM_SCALE)")]
BackfillOpt = Annotated[int | None, typer.Option(help="days before ds that the drop covers too")]
PathOpt = Annotated[str | None, typer.Option(help="input folder (files source) or dataset folder")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    for noisy in ("great_expectations", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _request(source: str, ds: str | None, scale: str | None, backfill_days: int | None, path: str | None):
    from ml.orchestration import ingest_ds
    from ml.settings import get_settings
    from ml.sources import SOURCE_NAMES, SourceRequest, public, synthetic

    if source not in SOURCE_NAMES:
        _fail(EcomError(f"unknown source {source!r}; choose one of {', '.join(SOURCE_NAMES)}"))
    settings = get_settings()
    scale = scale or settings.default_scale
    if ds is None:
        if source == "synthetic":
            ds = synthetic.scale_config(scale).end.isoformat()
        elif source in public.DATASETS:
            ds = _run(ingest_ds, settings, {"source": source, "path": path}, None, None)
        else:
            _fail(EcomError(f"source {source!r} needs --ds YYYY-MM-DD"))
    return settings, SourceRequest(source=source, ds=ds, scale=scale, seed=settings.seed, backfill_days=backfill_days, path=path)


def _fail(exc: EcomError):
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=1)


def _run(fn, *args):
    try:
        return fn(*args)
    except EcomError as exc:
        _fail(exc)


@app.command()
def settings() -> None:
    """Show the settings in force (environment variables with their defaults)."""
    from ml.settings import get_settings

    for key, value in get_settings().describe().items():
        typer.echo(f"{key} = {value}")


@app.command()
def generate(
    out: Annotated[str, typer.Option(help="folder to write <table>.csv files into (created)")],
    ds: DsOpt = None,
    scale: ScaleOpt = None,
    days: Annotated[int, typer.Option(help="days up to ds to include")] = 28,
) -> None:
    """Write the synthetic shop as contract CSV files: the bring-your-own-data format (`ingest --source files`)."""
    import datetime as dt
    from pathlib import Path

    from rich.progress import Progress

    from ml import ingest as steps
    from ml.sources import synthetic as shop
    from ml.sources.synthetic_source import ROAD_NETWORK

    settings_, request = _request("synthetic", ds, scale, None, None)
    cfg = shop.scale_config(request.scale, request.seed)
    end = dt.date.fromisoformat(request.ds)
    start = max(cfg.start, end - dt.timedelta(days=days - 1))
    road = settings_.shared_data_dir / ROAD_NETWORK
    world = shop.build_world(cfg, shop.road_node_coordinates(road) if road.exists() else None)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"simulating {cfg.start}..{end}", total=(end - cfg.start).days + 1)
        batch = shop.simulate(world, start, end, progress=lambda done, total: progress.update(bar, completed=done))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in batch.tables.items():
        steps.write_csv(name, frame, folder / f"{name}.csv")
        console.print(f"{name:>17}: {len(frame):>9,} rows -> {folder / (name + '.csv')}")
    console.print(f"ingest it with: ecom ingest --source files --path {folder} --ds {end} --backfill-days {(end - start).days}")


@app.command()
def land(source: SourceOpt = "synthetic", ds: DsOpt = None, scale: ScaleOpt = None,
         backfill_days: BackfillOpt = None, path: PathOpt = None) -> None:
    """Write the raw drop for ds (first ingest step)."""
    from ml import ingest

    settings_, request = _request(source, ds, scale, backfill_days, path)
    ingest.ensure_dirs(settings_)
    console.print_json(json.dumps(_run(ingest.land, settings_, request).__dict__))


@app.command()
def validate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Run the validation gate on the drop of ds (quarantines it if it fails)."""
    from ml import ingest
    from ml.settings import get_settings

    console.print_json(json.dumps(_run(ingest.validate, get_settings(), ds)))


@app.command()
def publish(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Publish the validated drop of ds to the curated lake."""
    from ml import ingest
    from ml.settings import get_settings

    console.print_json(json.dumps(_run(ingest.publish, get_settings(), ds)))


@app.command()
def ingest(source: SourceOpt = "synthetic", ds: DsOpt = None, scale: ScaleOpt = None,
           backfill_days: BackfillOpt = None, path: PathOpt = None) -> None:
    """land -> validate -> publish one drop."""
    from ml import ingest as steps

    settings_, request = _request(source, ds, scale, backfill_days, path)
    steps.ensure_dirs(settings_)
    console.print_json(json.dumps(_run(steps.run_day, settings_, request), default=str))


def _recommend_day(ds: str | None, params: dict) -> dict:
    """The ecom_recommendations DAG's steps in one process (shards one after another)."""
    from ml.orchestration import pipeline_ds
    from ml.recsys import score, train
    from ml.settings import get_settings

    settings_ = get_settings()
    config = train.RecsysConfig.from_params(params)
    ds = pipeline_ds(settings_, ds, None, None)
    registered = train.register(settings_, train.evaluate_run(settings_, train.train_run(settings_, ds, config)))
    decision = train.gate(settings_, registered)
    version = score.champion_version(settings_)
    for shard in range(config.shards):
        score.score_shard(settings_, ds, shard, config.shards, version, config.k, config.popularity_days, config.history_days)
    rows = score.publish(settings_, ds, config.shards, version)
    return {"ds": ds, "holdout": registered["holdout"], "metrics": registered["metrics"], "registered_version": registered["version"],
            "gate": decision, "scored_with_version": version, "rows": rows}


@app.command()
def recommend(
    ds: Annotated[str | None, typer.Option(help="data date YYYY-MM-DD (default: newest curated events)")] = None,
    model: Annotated[str, typer.Option(help="sasrec | ease | popularity")] = "sasrec",
    epochs: Annotated[int, typer.Option(help="SASRec: most epochs (early stopping on validation NDCG@10)")] = 30,
    k: Annotated[int, typer.Option(help="recommendations per customer")] = 100,
    shards: Annotated[int, typer.Option(help="customer shards (scored one after another here)")] = 4,
    holdout_days: Annotated[int, typer.Option(help="temporal holdout length in days")] = 14,
) -> None:
    """Train, evaluate beside recent popularity, register, gate, and score every customer with the champion."""
    params = {"model": model, "epochs": epochs, "k": k, "shards": shards, "holdout_days": holdout_days}
    console.print_json(json.dumps(_run(_recommend_day, ds, params), default=str))


def _forecast_day(ds: str | None, params: dict) -> dict:
    """The ecom_demand_forecast DAG's steps in one process (shards one after another)."""
    from ml.forecast import score, train
    from ml.orchestration import pipeline_ds
    from ml.settings import get_settings

    settings_ = get_settings()
    config = train.ForecastConfig.from_params(params)
    ds = pipeline_ds(settings_, ds, None, None, table="orders")
    registered = train.register(settings_, train.evaluate_run(settings_, train.train_run(settings_, ds, config)))
    decision = train.gate(settings_, registered)
    version = score.champion_version(settings_)
    series = sum(score.forecast_shard(settings_, ds, shard, config.shards, version, config.history_days)["series"]
                 for shard in range(config.shards))
    rows = score.publish(settings_, ds, config.shards, version)
    return {"ds": ds, "holdout": registered["holdout"], "metrics": registered["metrics"], "registered_version": registered["version"],
            "gate": decision, "forecast_with_version": version, "series": series, "rows": rows}


@app.command()
def forecast(
    ds: Annotated[str | None, typer.Option(help="data date YYYY-MM-DD (default: newest curated orders)")] = None,
    model: Annotated[str, typer.Option(help="lgbm | ets | seasonal_naive")] = "lgbm",
    horizon: Annotated[int, typer.Option(help="days ahead")] = 28,
    origins: Annotated[int, typer.Option(help="rolling backtest origins")] = 3,
    origin_step: Annotated[int, typer.Option(help="days between backtest origins")] = 14,
    shards: Annotated[int, typer.Option(help="series shards (forecast one after another here)")] = 2,
) -> None:
    """Fit, backtest beside seasonal naive, register, gate, and forecast every series with the champion."""
    params = {"model": model, "horizon": horizon, "origins": origins, "origin_step": origin_step, "shards": shards}
    console.print_json(json.dumps(_run(_forecast_day, ds, params), default=str))


def _plan_day(ds: str | None, params: dict) -> dict:
    """The ecom_inventory_plan DAG's steps in one process (warehouses one after another)."""
    from ml.inventory import plan
    from ml.orchestration import pipeline_ds
    from ml.settings import get_settings

    settings_ = get_settings()
    config = plan.InventoryConfig.from_params(params)
    ds = pipeline_ds(settings_, ds, None, None, table="demand_forecasts", zone="outputs")
    warehouses = plan.warehouse_ids(settings_, ds)
    plans = [plan.plan_one(settings_, ds, warehouse, config) for warehouse in warehouses]
    return {"ds": ds, "plans": plans, "rows": plan.publish(settings_, ds, len(warehouses))}


@app.command(name="plan")
def plan_command(
    ds: Annotated[str | None, typer.Option(help="forecast date YYYY-MM-DD (default: newest demand forecast)")] = None,
    service_level: Annotated[float, typer.Option(help="cycle service level behind the safety stock")] = 0.95,
    budget: Annotated[float | None, typer.Option(help="purchase budget per warehouse over the horizon")] = None,
    time_limit_s: Annotated[float, typer.Option(help="solver time limit per warehouse")] = 120.0,
) -> None:
    """Plan purchase orders per warehouse from the demand forecast (PuLP MILP, HiGHS with CBC as fallback)."""
    params = {"service_level": service_level, "budget": budget, "time_limit_s": time_limit_s}
    console.print_json(json.dumps(_run(_plan_day, ds, params), default=str))


def _intervene_day(ds: str | None, params: dict) -> dict:
    """The ecom_intervention DAG's steps in one process."""
    from ml.intervention import plan, train
    from ml.orchestration import pipeline_ds
    from ml.settings import get_settings

    settings_ = get_settings()
    config = train.InterventionConfig.from_params(params)
    ds = pipeline_ds(settings_, ds, None, None, table="events")
    registered = train.register(settings_, train.train_run(settings_, ds, config))
    decision = train.gate(settings_, registered)
    summary = plan.plan_day(settings_, ds, config, plan.champion_version(settings_))
    return {"ds": ds, "holdout": registered["holdout"], "metrics": registered["metrics"],
            "registered_version": registered["version"], "gate": decision, "plan": summary}


@app.command()
def intervene(
    ds: Annotated[str | None, typer.Option(help="data date YYYY-MM-DD (default: newest curated events)")] = None,
    learner: Annotated[str, typer.Option(help="uplift learner: x | t | s")] = "x",
    budget: Annotated[float, typer.Option(help="expected spend of the day's plan (discounts redeemed + contacts)")] = 500.0,
    caps: Annotated[str | None, typer.Option(help="most customers per action, comma separated in action order")] = None,
    fatigue_days: Annotated[int, typer.Option(help="no second action within this many days")] = 14,
    holdout_campaigns: Annotated[int, typer.Option(help="newest campaigns held out to measure uplift (Qini)")] = 3,
) -> None:
    """Train propensity and uplift, gate on Qini, and plan who gets which coupon tomorrow under the budget."""
    params = {"learner": learner, "budget": budget, "fatigue_days": fatigue_days, "holdout_campaigns": holdout_campaigns,
              "caps": None if caps is None else [int(c) for c in caps.split(",")]}
    console.print_json(json.dumps(_run(_intervene_day, ds, params), default=str))


def _route_day(ds: str | None, params: dict) -> dict:
    """The ecom_delivery_routing DAG's steps in one process (depots one after another)."""
    from ml.orchestration import pipeline_ds
    from ml.routing import plan
    from ml.settings import get_settings

    settings_ = get_settings()
    config = plan.RoutingConfig.from_params(params)
    ds = pipeline_ds(settings_, ds, None, None, table="orders")
    plan.network(settings_, config)
    depots = plan.depot_ids(settings_, ds, config)
    summaries = [plan.route_depot(settings_, ds, depot, config) for depot in depots]
    return {**plan.publish(settings_, ds, len(depots), summaries, config), "depots": summaries}


@app.command()
def route(
    ds: Annotated[str | None, typer.Option(help="order date YYYY-MM-DD; routes the orders promised for the next day")] = None,
    road_network: Annotated[str | None, typer.Option(help="OSM file (.osm.pbf/.osm/.osm.bz2); default: the shared Monaco extract")] = None,
    place: Annotated[str | None, typer.Option(help="instead of a file: a place name downloaded through osmnx (online)")] = None,
    depot: Annotated[str | None, typer.Option(help="route only this warehouse")] = None,
    fleet_size: Annotated[int | None, typer.Option(help="vehicles per depot (default: the warehouses table)")] = None,
    time_limit_s: Annotated[float, typer.Option(help="PyVRP time limit per depot")] = 10.0,
) -> None:
    """Route tomorrow's deliveries per depot on the road network (CVRPTW, PyVRP); write routes, exceptions and maps."""
    params = {"road_network": road_network, "place": place, "depot": depot, "fleet_size": fleet_size, "time_limit_s": time_limit_s}
    console.print_json(json.dumps(_run(_route_day, ds, params), default=str))


@app.command()
def demo(
    scale: ScaleOpt = None,
    history_days: Annotated[int, typer.Option(help="days of history to load")] = 365,
    epochs: Annotated[int, typer.Option(help="SASRec epochs for the demo's recommendations")] = 5,
) -> None:
    """The main job on embedded defaults: load the synthetic shop's history through the gate, a daily run, then
    the recommendations (SASRec on CPU, gated in MLflow, every customer scored), the demand forecast (LightGBM,
    backtested and gated), the inventory plan it drives (one MILP per warehouse), and tomorrow's coupon plan
    (propensity + uplift, gated on Qini, budget-optimal assignment), then tomorrow's delivery routes on the
    Monaco road network (PyVRP per depot, maps)."""
    import datetime as dt

    from ml import ingest as steps
    from ml.settings import get_settings
    from ml.sources import synthetic

    scale = scale or get_settings().default_scale
    end = synthetic.scale_config(scale).end
    day_before = (end - dt.timedelta(days=1)).isoformat()
    settings_, history = _request("synthetic", day_before, scale, history_days - 1, None)
    _, daily = _request("synthetic", end.isoformat(), scale, 0, None)
    steps.ensure_dirs(settings_)
    loaded = _run(steps.run_day, settings_, history)
    today = _run(steps.run_day, settings_, daily)
    console.print(f"[green]history loaded[/] {loaded['land']['window_start']}..{loaded['publish']['ds']}; "
                  f"daily run for {today['publish']['ds']} passed the gate")
    console.print(f"lake: {settings_.lake_dir}")
    console.print(f"validation report: {today['validate']['report']}")
    recs = _run(_recommend_day, today["publish"]["ds"], {"model": "sasrec", "epochs": epochs})
    model, baseline = recs["metrics"]["model"], recs["metrics"]["recent_popularity"]
    console.print(f"[green]recommendations[/] for {recs['ds']}: SASRec NDCG@10 {model['ndcg_at_10']:.4f} vs recent popularity "
                  f"{baseline['ndcg_at_10']:.4f} on {recs['holdout']}; gate: {recs['gate']['reason']}")
    console.print(f"{recs['rows']:,} rows in serving table recommendations (model v{recs['scored_with_version']}), "
                  f"MLflow: {settings_.mlflow_tracking_uri}")
    # a lighter LightGBM than the DAG's default (200 trees, 300k rows): the demo's four fits take about a minute
    fc = _run(_forecast_day, today["publish"]["ds"], {"model": "lgbm", "lgbm_estimators": 200, "lgbm_max_rows": 300_000})
    model, baseline = fc["metrics"]["model"], fc["metrics"]["seasonal_naive"]
    console.print(f"[green]demand forecast[/] for {fc['ds']}: LightGBM MASE {model['mase']:.3f} ({model['mase_vs_seasonal_naive']:.2f}x "
                  f"seasonal naive), P10-P90 coverage {model['coverage_p10_p90']:.1%} on {fc['holdout']}; gate: {fc['gate']['reason']}; "
                  f"{fc['rows']:,} rows in demand_forecasts")
    planned = _run(_plan_day, fc["ds"], {})
    for p in planned["plans"]:
        gap = "n/a" if p["mip_gap"] is None else f"{p['mip_gap']:.2%}"
        console.print(f"[green]inventory plan[/] {p['warehouse_id']}: {p['order_lines']} order lines, {p['units']:,} units, "
                      f"spend {p['spend']:,.2f}; {p['status']} (gap {gap}, {p['seconds']:.1f} s)")
    console.print(f"{planned['rows']:,} rows in serving table purchase_orders")
    nudges = _run(_intervene_day, today["publish"]["ds"], {})
    uplift, chosen = nudges["metrics"]["uplift"], nudges["plan"]
    console.print(f"[green]interventions[/] for {nudges['ds']}: uplift Qini {uplift['qini']:.4f} (S-learner "
                  f"{uplift.get('s_learner_qini', float('nan')):.4f}, random {uplift['random_qini']:.4f}), propensity ROC-AUC "
                  f"{nudges['metrics']['propensity']['roc_auc']:.3f}; gate: {nudges['gate']['reason']}")
    console.print(f"{chosen['rows']:,} customers get an action {chosen['per_action']}: expected profit "
                  f"{chosen['expected_profit']:,.2f} for {chosen['expected_spend']:,.2f} of the {chosen['budget']:,.2f} budget "
                  f"({chosen['solver_status']}); serving table interventions")
    from ml.routing.plan import RoutingConfig

    road = RoutingConfig().road_file(settings_)
    if not road.exists():
        console.print(f"[yellow]delivery routing skipped[/]: the road network {road} is not there; set ECOM_SHARED_DATA to the "
                      "shared data folder or run `ecom route --road-network FILE.osm.pbf`")
        return
    routed = _run(_route_day, today["publish"]["ds"], {})
    for d in routed["depots"]:
        console.print(f"[green]delivery routes[/] {d['depot_id']}: {d['served']} of {d['orders']} orders on {d['vehicles_used']} of "
                      f"{d['vehicles']} vans, {d['km']:.1f} km, {d['driving_hours']:.1f} h driving on {d['road_network']}; "
                      f"not routed: {d['exception_reasons'] or 'none'}")
    console.print(f"{routed['route_rows']:,} rows in delivery_routes, {routed['exceptions']} in delivery_exceptions; map: {routed['maps']}/routes.html")


if __name__ == "__main__":
    sys.exit(app())
