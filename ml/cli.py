"""``ecom``: run any pipeline outside Airflow, with the same steps, options and checks as its DAG.

    ecom demo                         # the main job on embedded defaults (synthetic shop, SQLite, local lake)
    ecom ingest --source bakery       # land -> validate -> publish one drop
    ecom land / validate / publish    # the ingest steps one at a time, as the DAG runs them
    ecom recommend --model sasrec     # train -> evaluate -> register -> gate -> score, as ecom_recommendations runs
    ecom forecast --model lgbm        # fit -> backtest -> register -> gate -> forecast, as ecom_demand_forecast runs
    ecom plan --service-level 0.95    # one replenishment MILP per warehouse -> purchase_orders, as ecom_inventory_plan runs
    ecom intervene --budget 500       # propensity + uplift -> gate on Qini -> tomorrow's coupons, as ecom_intervention runs
    ecom route --fleet-size 4         # one CVRPTW per depot -> delivery_routes and maps, as ecom_delivery_routing runs
    ecom generate --out DIR           # the synthetic shop as contract CSV files (bring-your-own-data format)
    ecom settings                     # the configuration in force

The pipeline commands and their options are generated from the pipeline declarations (``ml/*/pipeline.py``),
the same fields the DAGs' Params come from.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from ml import delivery
from ml.errors import EcomError
from ml.pipeline import FieldSpec, Pipeline

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

DsOpt = Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD (default: the pipeline's default day)")]
ScaleOpt = Annotated[str | None, typer.Option(help="synthetic shop size: tiny | demo | large (default ECOM_SCALE)")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    for noisy in ("great_expectations", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: EcomError):
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=1)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except EcomError as exc:
        _fail(exc)


def _print(value: Any) -> None:
    from ml.orchestration import xcom_safe

    console.print_json(json.dumps(xcom_safe(value)))


def run_pipeline(pipeline: Pipeline, ds: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Resolve the config and ds as the DAG's first task does, then run every step in one process."""
    from ml.orchestration import resolve_ds
    from ml.settings import get_settings

    settings_ = get_settings()
    config = pipeline.config.from_params(params)
    day, _ = resolve_ds(pipeline, settings_, config, param_ds=ds, asset_events=None, logical_date=None, run_after=None)
    return pipeline.run(settings_, day, config)


def _option(spec: FieldSpec) -> inspect.Parameter:
    """A CLI option for a config field: same name, help and default; lists as comma-separated text."""
    kinds = {"integer": int, "number": float, "string": str, "boolean": bool}
    if spec.item_type is not None:
        kind: Any = str | None
        help_text = f"{spec.doc} (comma separated; default {','.join(map(str, spec.default)) or 'none'})"
        default = None
    elif spec.base_type == "boolean":
        kind, help_text, default = bool, spec.doc, spec.default
    else:
        kind = kinds[spec.base_type] | None
        help_text = spec.doc + ("" if spec.default is None else f" (default {spec.default})")
        default = None
    if spec.choices is not None and spec.item_type is None:
        help_text += f"; one of {', '.join(map(str, spec.choices))}"
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, typer.Option(help=help_text)])


def _parse_list(spec: FieldSpec, text: str) -> list[Any]:
    convert = {"integer": int, "number": float, "string": str}[spec.item_type or "string"]
    return [None if part.strip() in ("", "none") else convert(part.strip()) for part in text.split(",")] if text else []


def pipeline_command(pipeline: Pipeline, summary: str) -> None:
    """Register ``ecom <pipeline.name>`` with one option per config field plus ``--ds``."""
    fields = pipeline.config.fields()

    def command(**options: Any) -> None:
        ds = options.pop("ds")
        params = {}
        for spec in fields:
            value = options[spec.name]
            params[spec.name] = _parse_list(spec, value) if spec.item_type is not None and value is not None else value
        _print(_run(run_pipeline, pipeline, ds, params))

    ds_param = inspect.Parameter("ds", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DsOpt)
    parameters = [ds_param, *(_option(spec) for spec in fields)]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = summary
    app.command(name=pipeline.name)(command)


def _register_pipelines() -> None:
    from ml.associations.pipeline import ASSOCIATIONS
    from ml.forecast.pipeline import DEMAND_FORECAST
    from ml.ingest_pipeline import INGEST
    from ml.intervention.pipeline import INTERVENTION
    from ml.inventory.pipeline import INVENTORY_PLAN
    from ml.recsys.pipeline import RECOMMENDATIONS
    from ml.risk.pipeline import RISK
    from ml.routing.pipeline import DELIVERY_ROUTING
    from ml.segments.pipeline import SEGMENTS
    from ml.simulation.pipeline import SIMULATION

    pipeline_command(INGEST, "land -> validate -> publish one drop.")
    pipeline_command(RECOMMENDATIONS, "Train, evaluate beside recent popularity, register, gate, and score every customer with the champion.")
    pipeline_command(DEMAND_FORECAST, "Fit, backtest beside seasonal naive, register, gate, and forecast every series with the champion.")
    pipeline_command(INVENTORY_PLAN, "Plan purchase orders per warehouse from the demand forecast (PuLP MILP, HiGHS with CBC as fallback).")
    pipeline_command(INTERVENTION, "Train propensity and uplift, gate on Qini, and plan who gets which coupon tomorrow under the budget.")
    pipeline_command(ASSOCIATIONS, "Mine frequently-bought-together rules (FP-growth) from the order baskets and publish them.")
    pipeline_command(SEGMENTS, "Score RFM codes and cluster the customers' behaviour into stable, named segments; publish them with a report.")
    pipeline_command(RISK, "Train the fraud and abuse model on matured chargebacks, gate it against the rules, and hold or review the day's riskiest orders.")
    pipeline_command(DELIVERY_ROUTING, "Route tomorrow's deliveries per depot on the road network (CVRPTW, PyVRP); write routes, exceptions and maps.")
    pipeline_command(
        SIMULATION,
        "Close the loop: the synthetic shop reacts day by day to what each policy publishes, measured in money against the passive shop (README: Closed loop).",
    )


_register_pipelines()


@app.command()
def contract(outputs: Annotated[bool, typer.Option(help="the tables the pipelines publish instead")] = False) -> None:
    """The bring-your-own-data format: every contract table with its key and columns (Markdown, as in the README);
    with --outputs, the tables the pipelines publish (checked against it at publish)."""
    from ml import contract as tables

    typer.echo(tables.markdown_table(outputs))


@app.command()
def settings() -> None:
    """Show the settings in force (environment variables with their defaults)."""
    from ml.settings import get_settings

    for key, value in get_settings().describe().items():
        typer.echo(f"{key} = {value}")


def _ingest_request(ds: str | None, **params: Any):
    """Settings and the source request of an ingest step, as the ingest pipeline builds them."""
    from ml.ingest_pipeline import INGEST, request_for
    from ml.orchestration import resolve_ds
    from ml.settings import get_settings

    settings_ = get_settings()
    config = _run(INGEST.config.from_params, params)
    day, _ = _run(resolve_ds, INGEST, settings_, config, param_ds=ds, asset_events=None, logical_date=None, run_after=None)
    return settings_, _run(request_for, settings_, day, config)


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
    from ml.sources import synthetic_source
    from ml.sources.synthetic_source import ROAD_NETWORK

    settings_, request = _ingest_request(ds, scale=scale)
    cfg = synthetic_source.shop_config(settings_, request.scale, request.seed)
    end = request.ds
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
    delivery.write_manifest(folder)
    console.print(f"manifest: {folder / delivery.MANIFEST}")
    console.print(f"ingest it with: ecom ingest --source files --path {folder} --ds {end} --backfill-days {(end - start).days}")


@app.command()
def land(
    source: Annotated[str, typer.Option(help="where the drop comes from")] = "synthetic",
    ds: DsOpt = None,
    scale: ScaleOpt = None,
    backfill_days: Annotated[int | None, typer.Option(help="days before ds the drop covers too")] = None,
    fill_gap: Annotated[bool, typer.Option(help="also land the days since the curated lake's newest")] = False,
    path: Annotated[str | None, typer.Option(help="input folder (files source) or dataset folder")] = None,
    allow_extra_columns: Annotated[bool, typer.Option(help="ignore (and report) columns the contract does not have")] = False,
) -> None:
    """Write the raw drop for ds (first ingest step)."""
    from ml import ingest

    settings_, request = _ingest_request(
        ds, source=source, scale=scale, backfill_days=backfill_days, fill_gap=fill_gap, path=path, allow_extra_columns=allow_extra_columns
    )
    ingest.ensure_dirs(settings_)
    _print(_run(ingest.land, settings_, request).__dict__)


@app.command()
def manifest(folder: Annotated[Path, typer.Argument(help="the folder of <table>.csv files to deliver")]) -> None:
    """Write FOLDER/manifest.json: each file's bytes, rows and SHA-256, which the gate checks the delivery against
    (run it where the files are produced, after they are complete)."""
    written = _run(delivery.write_manifest, folder)
    for name, entry in written["files"].items():
        console.print(f"{name:>22}: {entry['rows']:>9,} rows {entry['bytes']:>12,} bytes sha256 {entry['sha256'][:12]}...")
    console.print(f"wrote {folder / delivery.MANIFEST}")


@app.command()
def validate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Run the validation gate on the drop of ds (quarantines it if it fails)."""
    from ml import ingest
    from ml.dates import as_date
    from ml.settings import get_settings

    _print(_run(ingest.validate, get_settings(), _run(as_date, ds)))


@app.command()
def publish(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Publish the validated drop of ds to the curated lake."""
    from ml import ingest
    from ml.dates import as_date
    from ml.settings import get_settings

    _print(_run(ingest.publish, get_settings(), _run(as_date, ds)))


HISTORY_DROP_ROWS = 5_400_000
"""Inventory rows (one per product, warehouse and day: the largest table) per drop when landing a history: each drop
goes through the gate whole, so its size bounds the memory (90 days of the large shop, 3.5 GB at peak; the demo
shop's history fits in one drop)."""


def land_history(scale: str, days: int, end: str | None, drop_days: int | None = None) -> dict[str, Any]:
    """Open the synthetic shop so its history ends on ``end`` (default: yesterday by the clock), then land ``days``
    of it through the gate: everything before ``end`` as consecutive drops of at most ``drop_days`` days (default:
    as many as hold ``HISTORY_DROP_ROWS`` inventory rows), each continuing the last, then ``end`` as a daily drop,
    whose run it returns."""
    import datetime as dt

    from ml import ingest as steps
    from ml.dates import as_date
    from ml.ingest_pipeline import INGEST
    from ml.settings import get_settings
    from ml.sources import synthetic_source

    settings_ = get_settings()
    last = _run(as_date, end) if end else dt.date.today() - dt.timedelta(days=1)
    steps.ensure_dirs(settings_)
    shop = synthetic_source.open_shop(settings_, scale, last)
    opened = shop.start
    drop_days = drop_days or max(1, HISTORY_DROP_ROWS // (shop.n_products * shop.n_warehouses))
    first = max(opened, last - dt.timedelta(days=days - 1))
    drops: list[dict[str, Any]] = []
    while first < last:
        drop_end = min(first + dt.timedelta(days=drop_days - 1), last - dt.timedelta(days=1))
        console.print(f"history drop {len(drops) + 1}: {first}..{drop_end}")
        drops.append(_run(run_pipeline, INGEST, drop_end.isoformat(), {"scale": scale, "backfill_days": (drop_end - first).days}))
        first = drop_end + dt.timedelta(days=1)
    today = _run(run_pipeline, INGEST, last.isoformat(), {"scale": scale, "backfill_days": 0})
    console.print(
        f"[green]history loaded[/] in {len(drops)} drop(s) {drops[0]['steps']['land']['window_start'] if drops else last}..{last} (the shop "
        f"opened on {opened}); daily run for {today['ds']} passed the gate. The daily schedule continues from {last + dt.timedelta(days=1)}"
    )
    return today


@app.command()
def history(
    scale: ScaleOpt = None,
    days: Annotated[int, typer.Option(help="days of history to land")] = 365,
    end: Annotated[str | None, typer.Option(help="last day YYYY-MM-DD (default: yesterday by the clock)")] = None,
    drop_days: Annotated[
        int | None, typer.Option(min=1, help=f"days per drop, each through the gate whole (default: as many as hold {HISTORY_DROP_ROWS:,} inventory rows)")
    ] = None,
) -> None:
    """Land the synthetic shop's history ending yesterday through the gate, so that unpausing ecom_ingest continues
    it day by day (the first part of `ecom demo`; `make stack` users run it with the stack's settings)."""
    from ml.settings import get_settings

    land_history(scale or get_settings().default_scale, days, end, drop_days)


@app.command()
def demo(
    scale: ScaleOpt = None,
    history_days: Annotated[int, typer.Option(help="days of history to load")] = 365,
    epochs: Annotated[int, typer.Option(help="SASRec epochs for the demo's recommendations")] = 5,
    end: Annotated[str | None, typer.Option(help="last day of the history YYYY-MM-DD (default: yesterday by the clock)")] = None,
) -> None:
    """The main job on embedded defaults: load the synthetic shop's history (ending yesterday, so the daily
    schedule continues from it) through the gate, a daily run, then the recommendations (SASRec on CPU, gated in
    MLflow, every customer scored), the demand forecast (LightGBM, backtested and gated), the inventory plan it
    drives (one MILP per warehouse), the customer segments (RFM and behavioural clusters, with a report),
    tomorrow's coupon plan (propensity + uplift, gated on Qini, budget-optimal assignment, spend per segment), the
    day's order risk (fraud and abuse model gated against the rules, held and reviewed orders), then tomorrow's
    delivery routes on the Monaco road network (PyVRP per depot, maps; held orders are not routed)."""
    from ml.forecast.pipeline import DEMAND_FORECAST
    from ml.intervention.pipeline import INTERVENTION
    from ml.inventory.pipeline import INVENTORY_PLAN
    from ml.recsys.pipeline import RECOMMENDATIONS
    from ml.risk.pipeline import RISK
    from ml.routing.pipeline import DELIVERY_ROUTING, RoutingConfig
    from ml.segments.pipeline import SEGMENTS
    from ml.settings import get_settings

    settings_ = get_settings()
    today = land_history(scale or settings_.default_scale, history_days, end)
    day = today["ds"]
    console.print(f"lake: {settings_.lake}")
    console.print(f"validation report: {today['steps']['validate']['report']}")
    recs = _run(run_pipeline, RECOMMENDATIONS, day, {"model": "sasrec", "epochs": epochs})
    gated = recs["steps"]["gate"]
    model, baseline = gated["metrics"]["model"], gated["metrics"]["recent_popularity"]
    console.print(
        f"[green]recommendations[/] for {recs['ds']}: SASRec NDCG@10 {model['ndcg_at_10']:.4f} vs recent popularity "
        f"{baseline['ndcg_at_10']:.4f} on {gated['holdout']}; gate: {gated['reason']}"
    )
    console.print(
        f"{recs['publish']['rows']:,} rows in serving table recommendations (model v{recs['publish']['version']}), MLflow: {settings_.mlflow_tracking_uri}"
    )
    # a lighter LightGBM than the DAG's default (200 trees, 300k rows): the demo's four fits take about a minute
    fc = _run(run_pipeline, DEMAND_FORECAST, day, {"model": "lgbm", "lgbm_estimators": 200, "lgbm_max_rows": 300_000})
    gated = fc["steps"]["gate"]
    model = gated["metrics"]["model"]
    console.print(
        f"[green]demand forecast[/] for {fc['ds']}: LightGBM MASE {model['mase']:.3f} ({model['mase_vs_seasonal_naive']:.2f}x "
        f"seasonal naive), P10-P90 coverage {model['coverage_p10_p90']:.1%} on {gated['holdout']}; gate: {gated['reason']}; "
        f"{fc['publish']['rows']:,} rows in demand_forecasts"
    )
    planned = _run(run_pipeline, INVENTORY_PLAN, day, {})
    for p in planned["solve"]:
        gap = "n/a" if p["mip_gap"] is None else f"{p['mip_gap']:.2%}"
        console.print(
            f"[green]inventory plan[/] {p['warehouse_id']}: {p['order_lines']} order lines, {p['units']:,} units, "
            f"spend {p['spend']:,.2f}; {p['status']} (gap {gap}, {p['seconds']:.1f} s)"
        )
    console.print(f"{planned['publish']['rows']:,} rows in serving table purchase_orders")
    segmented = _run(run_pipeline, SEGMENTS, day, {})
    found = segmented["steps"]["segment"]
    console.print(
        f"[green]customer segments[/] for {segmented['ds']}: {found['customers']:,} customers in {found['k']} segments "
        f"({'; '.join(f'{s}: {n}' for s, n in found['names'].items())}); report: {segmented['publish']['report']}"
    )
    nudges = _run(run_pipeline, INTERVENTION, day, {})
    gated, chosen = nudges["steps"]["gate"], nudges["publish"]
    uplift = gated["metrics"]["uplift"]
    console.print(
        f"[green]interventions[/] for {nudges['ds']}: uplift Qini {uplift['qini']:.4f} (S-learner "
        f"{uplift.get('s_learner_qini', float('nan')):.4f}, random {uplift['random_qini']:.4f}), propensity ROC-AUC "
        f"{gated['metrics']['propensity']['roc_auc']:.3f}; gate: {gated['reason']}"
    )
    console.print(
        f"{chosen['rows']:,} customers get an action {chosen['per_action']}: expected profit "
        f"{chosen['expected_profit']:,.2f} for {chosen['expected_spend']:,.2f} of the {chosen['budget']:,.2f} budget "
        f"({chosen['solver_status']}); serving table interventions"
    )
    console.print(
        "by segment: " + "; ".join(f"{name} {v['customers']:,} customers, spend {v['expected_spend']:,.2f}" for name, v in chosen["per_segment"].items())
    )
    risk = _run(run_pipeline, RISK, day, {})
    gated, decided = risk["steps"]["gate"], risk["decide"]
    console.print(
        f"[green]order risk[/] for {risk['ds']}: PR-AUC {gated['metrics']['model']['pr_auc']:.3f} vs the rules "
        f"{gated['metrics']['rules']['pr_auc']:.3f} on {gated['holdout']}; gate: {gated['reason']}; {decided['rows']} orders: "
        f"{decided['hold']} held, {decided['review']} to review; serving table order_risk"
    )
    road = RoutingConfig().road_file(settings_)
    if not road.exists():
        console.print(
            f"[yellow]delivery routing skipped[/]: the road network {road} is not there; set ECOM_SHARED_DATA to the "
            "shared data folder or run `ecom route --road-network FILE.osm.pbf`"
        )
        return
    routed = _run(run_pipeline, DELIVERY_ROUTING, day, {})
    for d in routed["route"]:
        console.print(
            f"[green]delivery routes[/] {d['depot_id']}: {d['served']} of {d['orders']} orders on {d['vehicles_used']} of "
            f"{d['vehicles']} vans, {d['km']:.1f} km, {d['driving_hours']:.1f} h driving on {d['road_network']}; "
            f"not routed: {d['exception_reasons'] or 'none'}"
        )
    done = routed["publish"]
    console.print(f"{done['route_rows']:,} rows in delivery_routes, {done['exceptions']} in delivery_exceptions; map: {done['maps']}/routes.html")


if __name__ == "__main__":
    sys.exit(app())
