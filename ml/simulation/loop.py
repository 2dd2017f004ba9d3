"""The closed loop, at the edges: each day the shop delivers its drop as a folder of contract CSVs, the platform
ingests it through the gate, runs the daily chain on its schedule in a lake of its own, and the next day the shop
reacts to what was published.

Schedule (the same for every policy): before the first simulated day and then every ``retrain_every`` days the
models are retrained (recommendations, demand forecast) and a coupon campaign is planned (the intervention
pipeline, trained and targeted); on the other days the champions score (``Pipeline.run(start_at="champion")``). The
inventory plan is re-solved every day from the newest stock and forecast, and only its lines ordered for the next
day are placed: a rolling re-plan. Every policy routes with the routing pipeline (routing is not ablated)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import json
import logging
import logging.handlers
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml import delivery, ingest, lake
from ml.errors import ConfigError
from ml.settings import Settings
from ml.simulation import policies
from ml.simulation.pipeline import SimulationConfig
from ml.simulation.policies import Policy
from ml.simulation.shop import ClosedLoopShop, Decisions
from ml.sources import synthetic
from ml.sources.synthetic_source import ROAD_NETWORK

log = logging.getLogger(__name__)


@dataclass
class PolicyRun:
    """One policy on one seed: the books of every simulated day and the seconds each part took."""

    policy: str
    seed: int
    ledger: list[dict[str, Any]]
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_shop(config: SimulationConfig) -> None:
    """The history and the simulated days fit in the shop's calendar."""
    n_days = synthetic.scale_config(config.scale).n_days
    if config.history_days + config.days > n_days:
        raise ConfigError(f"the {config.scale} shop simulates {n_days} days: {config.history_days} days of history + {config.days} simulated days do not fit")


def world_and_history(settings: Settings, config: SimulationConfig, seed: int) -> tuple[synthetic.World, synthetic.Batch]:
    """The shop (no fraud: the loop measures legitimate trade) and its open-loop history."""
    check_shop(config)
    cfg = dataclasses.replace(synthetic.scale_config(config.scale, seed), abuse_rate=0.0)
    road = settings.shared_data_dir / ROAD_NETWORK
    world = synthetic.build_world(cfg, synthetic.road_node_coordinates(road) if road.exists() else None)
    history = synthetic.simulate(world, cfg.start, cfg.start + dt.timedelta(days=config.history_days - 1))
    return world, history


def run_policy(
    base: Settings,
    config: SimulationConfig,
    policy: Policy,
    world: synthetic.World,
    history: synthetic.Batch,
    folder: Path,
    progress: Callable[[str], None] = log.info,
) -> PolicyRun:
    """Simulate ``config.days`` days of the shop under ``policy``, the platform's files under ``folder`` (replaced)."""
    if folder.exists():
        shutil.rmtree(folder)
    settings = _settings(base, folder, world.cfg)
    ingest.ensure_dirs(settings)
    shop = ClosedLoopShop.after(world, copy.deepcopy(history))
    if policy.stock == "base_stock":
        shop.stock.resize(world, config.base_stock_safety)
    seconds: dict[str, float] = {}
    last = shop.today - dt.timedelta(days=1)
    _land(settings, history.tables, last, config.history_days - 1, seconds)
    decisions = _decide(settings, config, policy, world, last, retrain=True, seconds=seconds)
    ledger = []
    for k in range(config.days):
        t0 = time.perf_counter()
        result = shop.day(decisions)
        seconds["shop"] = seconds.get("shop", 0.0) + time.perf_counter() - t0
        ledger.append(result.ledger)
        progress(f"{policy.name} seed {world.cfg.seed}: day {k + 1}/{config.days} ({result.day}) gross profit {result.ledger['gross_profit']:,.2f}")
        if k + 1 < config.days:
            _land(settings, result.tables, result.day, 0, seconds)
            decisions = _decide(settings, config, policy, world, result.day, retrain=(k + 1) % config.retrain_every == 0, seconds=seconds)
    return PolicyRun(policy.name, world.cfg.seed, ledger, {k: round(v, 1) for k, v in seconds.items()})


def simulation_folder(settings: Settings, ds: dt.date, config: SimulationConfig) -> Path:
    """Where a run of ``ecom_simulation`` keeps its per-policy platforms and its report (a rerun replaces them)."""
    return settings.home / "simulations" / f"{ds.isoformat()}-{config.scale}-{config.days}d"


def simulate(
    settings: Settings, config: SimulationConfig, folder: Path, jobs: int = 1, log_mlflow: bool = True, progress: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Every policy run of ``config`` (``config.tasks()``), ``jobs`` at a time in worker processes, then the report
    (:func:`finish`). The figures do not depend on ``jobs``; progress goes to the log in the workers."""
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    check_shop(config)
    t0 = time.perf_counter()
    tasks = config.tasks()
    try:
        if jobs == 1:  # one shop in memory at a time
            runs = []
            for seed in config.seeds:
                _SHOPS[seed] = world_and_history(settings, config, seed)
                runs += [run_task(settings, config, folder, task, progress) for task in tasks if task[1] == seed]
                del _SHOPS[seed]
        else:
            shops = {seed: world_and_history(settings, config, seed) for seed in config.seeds}
            # Spawned, not forked: a child forked after this process ran an OpenMP region (LightGBM, numba's
            # parallel top-k) inherits a thread pool whose threads did not survive the fork, and its next parallel
            # region aborts or silently skips rows. The shops travel pickled (tens of MB, well under a second).
            spawn = multiprocessing.get_context("spawn")
            records = spawn.Queue()
            listener = logging.handlers.QueueListener(records, *logging.getLogger().handlers, respect_handler_level=True)
            listener.start()
            try:
                with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=spawn, initializer=_start_worker, initargs=(shops, records, _log_levels())) as pool:
                    runs = list(pool.map(functools.partial(run_task, settings, config, folder), tasks))
            finally:
                listener.stop()
    finally:
        _SHOPS.clear()
    return finish(settings, config, folder, runs, log_mlflow, {"jobs": jobs, "seconds": round(time.perf_counter() - t0, 1)})


def _start_worker(shops: dict[int, tuple[synthetic.World, synthetic.Batch]], records: Any, levels: dict[str, int]) -> None:
    """Hold the simulation's shops, log through the parent's handlers at its levels, and keep idle OpenMP threads from
    spinning: by default they do, and in runs side by side LightGBM's would steal each other's cores (read when the
    worker first loads OpenMP; results do not change)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _SHOPS.update(shops)
    logging.getLogger().handlers[:] = [logging.handlers.QueueHandler(records)]
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def _log_levels() -> dict[str, int]:
    """The levels set on this process's loggers, the root's under ''."""
    loggers = logging.Logger.manager.loggerDict.items()
    return {name: logger.level for name, logger in loggers if isinstance(logger, logging.Logger) and logger.level} | {"": logging.getLogger().level}


_SHOPS: dict[int, tuple[synthetic.World, synthetic.Batch]] = {}
"""The world and open-loop history per seed of the simulation under way in this process."""


def run_task(settings: Settings, config: SimulationConfig, folder: Path, task: tuple[str, int], progress: Callable[[str], None] = log.info) -> PolicyRun:
    """One policy on one seed, in ``folder/<policy>-seed<seed>`` (the shop built here unless this process holds it)."""
    name, seed = task
    world, history = _SHOPS[seed] if seed in _SHOPS else world_and_history(settings, config, seed)
    return run_policy(settings, config, policies.policy(name), world, history, folder / f"{name}-seed{seed}", progress)


def finish(
    settings: Settings, config: SimulationConfig, folder: Path, runs: list[PolicyRun], log_mlflow: bool = True, described: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Summarize the policy runs, write ``figures.json`` and ``report.html`` in ``folder`` and log them to MLflow
    (experiment ``ecom_simulation``) unless told not to; returns the summary with the two files' paths."""
    from ml.simulation import report

    described = config.as_dict() | (described or {})
    summary = report.summarize(runs, described)
    figures, page = report.write(summary, folder)
    metrics = {f"{name}_gross_profit": p["gross_profit"]["mean"] for name, p in summary["policies"].items()}
    if log_mlflow:
        from ml import registry

        registry.log_benchmark_run(settings, "ecom_simulation", f"{config.scale}-{config.days}d", _flat(described), metrics, {}, (figures, page))
    return summary | {"report": str(page), "figures": str(figures)}


def _flat(params: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}


def _settings(base: Settings, folder: Path, cfg: synthetic.ShopConfig) -> Settings:
    """A platform of its own per policy: lake, serving store, MLflow and artifacts under ``folder``."""
    return dataclasses.replace(
        base,
        home=folder,
        lake=folder / "lake",
        serving_url=f"sqlite:///{folder / 'serving.db'}",
        mlflow_tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        mlflow_artifact_root=(folder / "mlartifacts").as_uri(),
        default_scale="demo",
        seed=cfg.seed,
        abuse_rate=0.0,
    )


def _land(settings: Settings, tables: dict[str, pd.DataFrame], ds: dt.date, backfill_days: int, seconds: dict[str, float]) -> None:
    """Deliver the shop's tables as a folder of CSVs with its manifest, and ingest it through the gate."""
    from ml.ingest_pipeline import INGEST, IngestConfig

    t0 = time.perf_counter()
    folder = settings.home / "deliveries" / ds.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        ingest.write_csv(name, frame, folder / f"{name}.csv")
    delivery.write_manifest(folder)
    INGEST.run(settings, ds, IngestConfig(source="files", path=str(folder), backfill_days=backfill_days))
    shutil.rmtree(folder)
    seconds["ingest"] = seconds.get("ingest", 0.0) + time.perf_counter() - t0


def _timed(seconds: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    return out


def _decide(
    settings: Settings, config: SimulationConfig, policy: Policy, world: synthetic.World, ds: dt.date, retrain: bool, seconds: dict[str, float]
) -> Decisions:
    """Run the platform's chain for ds where the policy uses it and read what it published; the passive
    counterparts otherwise. The decisions are for ds + 1."""
    from ml.forecast.pipeline import DEMAND_FORECAST, ForecastConfig
    from ml.intervention.pipeline import INTERVENTION, InterventionConfig
    from ml.inventory.pipeline import INVENTORY_PLAN, InventoryConfig
    from ml.recsys.pipeline import RECOMMENDATIONS, RecsysConfig
    from ml.routing.pipeline import DELIVERY_ROUTING, RoutingConfig

    start_at = None if retrain else "champion"
    n_c, tomorrow = world.cfg.n_customers, ds + dt.timedelta(days=1)
    decisions = Decisions()
    if policy.recs == "platform":
        # the shop sells staples: 43% of a holdout's purchases by known customers are products they bought before;
        # the closed-loop figures in the README were measured with the fixed-mix blend (no recency)
        own = {"model": config.recs_model, "repeat_purchases": True, "shards": 1, "blend_recency": False}
        recs = RecsysConfig.from_params(config.params("recommendations", own))
        _timed(seconds, "recommendations", lambda: RECOMMENDATIONS.run(settings, ds, recs, start_at))
        decisions.lists = policies.served_lists(_output(settings, "recommendations", ds), n_c)
    elif policy.recs == "popularity":
        events = lake.read_range(settings.lake, "curated", "events", ds - dt.timedelta(days=policies.POPULARITY_DAYS - 1), ds)
        decisions.lists = policies.popularity_lists(events[events["event_type"] == "purchase"], n_c)
    elif policy.recs == "oracle":
        decisions.lists = policies.oracle_lists(world, tomorrow)
    if policy.coupons == "platform" and retrain:
        campaign = InterventionConfig.from_params(config.params("interventions", {"budget": config.coupon_budget}))
        _timed(seconds, "interventions", lambda: INTERVENTION.run(settings, ds, campaign))
        decisions.coupon_customers, decisions.coupon_actions = policies.served_coupons(_output(settings, "interventions", ds))
    if policy.stock == "platform":
        forecast = ForecastConfig.from_params(
            config.params("forecast", {"model": "lgbm", "lgbm_estimators": config.forecast_estimators, "lgbm_max_rows": 300_000, "shards": 1})
        )
        _timed(seconds, "forecast", lambda: DEMAND_FORECAST.run(settings, ds, forecast, start_at))
        plan = InventoryConfig.from_params(config.params("inventory", {"service_level": config.inventory_service_level}))
        _timed(seconds, "inventory", lambda: INVENTORY_PLAN.run(settings, ds, plan))
        decisions.replenishment = policies.replenishment(_output(settings, "purchase_orders", ds), tomorrow, world)
    routing = RoutingConfig.from_params(config.params("routing", {"time_limit_s": config.routing_time_limit_s}))
    if routing.road_file(settings).exists():
        _timed(seconds, "routing", lambda: DELIVERY_ROUTING.run(settings, ds, routing))
        decisions.routes = _output(settings, "delivery_routes", ds)
    return decisions


def _output(settings: Settings, table: str, ds: dt.date) -> pd.DataFrame:
    return lake.read_partition(settings.lake, "outputs", table, ds)
