"""ecom_simulation, declared once: plan (one item per policy and seed) -> simulate (mapped: each policy lives the
simulated days on one seed, in a platform of its own) -> report (``figures.json`` and ``report.html`` under
``ECOM_HOME/simulations/``, logged to the MLflow experiment ``ecom_simulation``). Manual runs only: it reads and writes
nothing of the production lake. The DAG, ``ecom simulate`` and the Params derive from it; the shop's response rules
are in the README's "Closed loop" section."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ml.errors import ConfigError
from ml.pipeline import ITEMS, FanOut, Pipeline, PipelineConfig, Run, Step, option
from ml.settings import Settings

ABLATION_NAMES = ("no_recs", "no_coupons", "no_inventory")
POLICY_NAMES = ("platform", "passive", *ABLATION_NAMES)
"""``policies.POLICIES`` by name (spelled out so that parsing the DAG imports no pandas; a test keeps them equal)."""
LOOP_PIPELINES = ("recommendations", "forecast", "interventions", "inventory", "routing")


@dataclass(frozen=True)
class SimulationConfig(PipelineConfig):
    """How a closed-loop simulation runs (the same for every policy it compares)."""

    scale: str = option("demo", "Synthetic shop size", choices=("tiny", "demo", "large"))
    days: int = option(28, "Days the shop reacts to each policy, after its history", minimum=1, maximum=730)
    history_days: int = option(365, "Days of open-loop history before the first simulated day", minimum=60, maximum=3650)
    policies: tuple[str, ...] = option(
        ("platform", "passive"), "Policies to compare (no_recs, no_coupons, no_inventory swap one component for the passive one)", choices=POLICY_NAMES
    )
    seeds: tuple[int, ...] = option((42,), "Shop seeds; on each, every policy meets the same customers with the same dice")
    ablation_seeds: int = option(1, "The ablations run on this many of the seeds (the first ones)", minimum=1)
    retrain_every: int = option(7, "Retrain the models and plan a coupon campaign every this many days (score daily)", minimum=1, maximum=365)
    recs_model: str = option(
        "blend", "Recommender the platform trains (its gate still decides against recent popularity)", choices=("sasrec", "ease", "blend", "popularity")
    )
    forecast_estimators: int = option(200, "LightGBM trees of the platform's demand forecast", minimum=10, maximum=5000)
    routing_time_limit_s: float = option(2.0, "PyVRP's time limit per depot and day inside the loop (the routing DAG's default is 10 s)", exclusive_minimum=0)
    inventory_service_level: float = option(
        0.98, "Cycle service level of the platform's daily inventory re-plan (0.98 came closest to a 95% fill on tuning seed 3)", minimum=0.5, maximum=0.999
    )
    coupon_budget: float = option(500.0, "Expected spend of each coupon campaign", minimum=0)
    base_stock_safety: float = option(
        1.7,
        "The passive shop's (s, S) margin over the lead-time demand (synthetic.Stock.levels); 1.7 reaches the 95% fill target on tuning seed 3",
        exclusive_minimum=0,
        maximum=10,
    )
    pipeline_params: str = option("{}", 'JSON Params per pipeline inside the loop over its own, e.g. {"forecast": {"horizon": 14}}')

    def check(self) -> None:
        if not self.policies or not self.seeds:
            raise ConfigError("a simulation needs at least one policy and one seed")
        if len(set(self.seeds)) < len(self.seeds):
            raise ConfigError(f"seeds repeat: {list(self.seeds)}")
        unknown = set(self.overrides()) - set(LOOP_PIPELINES)
        if unknown:
            raise ConfigError(f"pipeline_params names unknown pipeline(s) {sorted(unknown)}; known: {list(LOOP_PIPELINES)}")

    def overrides(self) -> dict[str, dict[str, Any]]:
        """``pipeline_params`` parsed: Params per pipeline over the loop's own."""
        try:
            parsed = json.loads(self.pipeline_params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"pipeline_params is not JSON ({exc}): {self.pipeline_params[:200]!r}") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise ConfigError(f"pipeline_params must map pipeline names to objects of Params, got {self.pipeline_params[:200]!r}")
        return parsed

    def params(self, pipeline: str, own: dict[str, Any]) -> dict[str, Any]:
        """A loop pipeline's Params: the loop's own, overridden by ``pipeline_params``."""
        return own | self.overrides().get(pipeline, {})

    def tasks(self) -> list[tuple[str, int]]:
        """(policy, seed) per policy run: every policy on every seed, the ablations on the first ``ablation_seeds``."""
        return [(p, seed) for index, seed in enumerate(self.seeds) for p in self.policies if p not in ABLATION_NAMES or index < self.ablation_seeds]


def _today(settings: Settings, config: Any, limit: dt.date | None) -> dt.date:
    """A simulation reads no lake partition: its ds only names the folder its report goes to."""
    return limit or dt.datetime.now(dt.UTC).date()


def _plan(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.simulation import loop

    loop.check_shop(run.config)
    return {ITEMS: [{"policy": p, "seed": seed} for p, seed in run.config.tasks()]}


def _simulate(run: Run, item: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    from ml.simulation import loop

    return loop.run_task(run.settings, run.config, loop.simulation_folder(run.settings, run.ds, run.config), (item["policy"], item["seed"])).as_dict()


def _report(run: Run, planned: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.simulation import loop

    summary = loop.finish(run.settings, run.config, loop.simulation_folder(run.settings, run.ds, run.config), [loop.PolicyRun(**r) for r in runs])
    return {"ds": run.ds.isoformat(), **{k: summary[k] for k in ("platform_vs_passive", "contributions", "coupon_roi", "report", "figures")}} | {
        "gross_profit": {name: p["gross_profit"] for name, p in summary["policies"].items()}
    }


SIMULATION = Pipeline(
    name="simulate",
    dag_id="ecom_simulation",
    doc=__doc__ or "",
    config=SimulationConfig,
    steps=(Step("plan", _plan),),
    fan_out=FanOut("simulate", _simulate),
    publish=_report,
    publish_name="report",
    outputs=(),
    default_ds=_today,
    tags=("simulation",),
)
