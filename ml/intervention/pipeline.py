"""ecom_intervention, declared once: train propensity + uplift -> register -> gate on Qini -> champion -> target
(tomorrow's coupons under the budget, staged) -> publish ``interventions``. The DAG, ``ecom intervene`` and the Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.errors import ConfigError
from ml.pipeline import (
    Pipeline,
    PipelineConfig,
    Run,
    Step,
    model_steps,
    newest_partition,
    option,
)

if TYPE_CHECKING:
    from ml.intervention.model import TreeConfig

CONTROL = "control"  # ml.contract.CONTROL, the randomized arm's name (kept literal: this module stays light)


@dataclass(frozen=True)
class InterventionConfig(PipelineConfig):
    learner: str = option(
        "auto", "Uplift learner: auto (per action, the best cross-validated Qini of X, T and S), or X-, T- or S-learner", choices=("auto", "x", "t", "s")
    )
    actions: tuple[str, ...] = option(("coupon_5", "coupon_15"), "Coupon actions, as named in coupon_campaigns")
    discounts: tuple[float, ...] = option((0.05, 0.15), "Discount rate of each action, in action order", minimum=0, maximum=0.99)
    budget: float = option(500.0, "Expected spend of the day's plan (discounts redeemed + contacts)", minimum=0)
    caps: tuple[int | None, ...] = option((), "Most customers per action, in action order (empty: no caps)", minimum=0)
    segments: tuple[str, ...] = option((), "Only customers of these segments, by number or name in customer_segments (empty: every customer)")
    segment_cap: int | None = option(None, "Most customers given an action in each segment of customer_segments (empty: no cap)", minimum=0)
    contact_cost: float = option(0.05, "Cost of sending one message", minimum=0)
    margin: float | None = option(None, "Gross margin rate on list price (empty: measured from catalogue and sales)", exclusive_minimum=0, maximum=0.99)
    fatigue_days: int = option(14, "No second action within this many days", minimum=1, maximum=365)
    window_days: int = option(7, "Propensity: a purchase within this many days", minimum=1, maximum=90)
    lookback_days: int = option(365, "Features look this far back", minimum=1, maximum=3650)
    campaign_history_days: int = option(365, "Campaign history used to learn uplift", minimum=1, maximum=3650)
    snapshots: int = option(6, "Weekly propensity snapshots: train on all but the last two, calibrate, test", minimum=3, maximum=104)
    holdout_campaigns: int = option(3, "Newest campaigns held out for the Qini", minimum=1, maximum=52)
    n_estimators: int = option(200, "LightGBM: boosting rounds", minimum=1, maximum=10_000)
    learning_rate: float = option(0.03, "LightGBM: learning rate", exclusive_minimum=0, maximum=1)
    num_leaves: int = option(4, "LightGBM: leaves per tree", minimum=2, maximum=1024)
    min_child_samples: int = option(500, "LightGBM: fewest rows per leaf", minimum=1)
    gate_margin: float = option(0.02, "Relative Qini gain to replace the champion", minimum=0, maximum=0.99)
    time_limit_s: float = option(60.0, "Budget MILP time limit", exclusive_minimum=0, maximum=3600)
    seed: int = option(42, "Training seed", minimum=0)

    def check(self) -> None:
        if not self.actions or len(self.actions) != len(self.discounts) or CONTROL in self.actions:
            raise ConfigError(f"intervention actions {list(self.actions)} need one discount each (got {list(self.discounts)}) and must not include '{CONTROL}'")
        if self.caps and len(self.caps) != len(self.actions):
            raise ConfigError(f"intervention caps {list(self.caps)} need one entry per action {list(self.actions)} (or none)")

    def trees(self) -> TreeConfig:
        from ml.intervention.model import TreeConfig

        return TreeConfig(self.n_estimators, self.learning_rate, self.num_leaves, self.min_child_samples, self.seed)

    def caps_per_action(self) -> tuple[int | None, ...]:
        return self.caps or (None,) * len(self.actions)


def _target(run: Run, champion: dict[str, Any]) -> dict[str, Any]:
    from ml.intervention import target

    return target.target_day(run.settings, run.ds, run.config, champion["version"])


def _publish(run: Run, planned: dict[str, Any], _: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.intervention import target

    return target.publish(run.settings, run.ds, planned)


INTERVENTION = Pipeline(
    name="intervene",
    dag_id="ecom_intervention",
    doc=__doc__ or "",
    config=InterventionConfig,
    # planning is a step of its own and the publish only commits what it staged, so a publish retried after a
    # crash does not plan again
    steps=(*model_steps("ml.intervention.train", evaluate=None), Step("target", _target)),
    publish=_publish,
    outputs=("outputs/interventions",),
    # both are published after the curated tables of the same ds; waiting for the segments too means the segment
    # Params and the summary's spend per segment always see the ds's segments, whatever DAG finishes first
    triggers=("outputs/recommendations", "outputs/customer_segments"),
    # a feature (yesterday's top recommendation) and a filter, either missing when absent (a manual run needs the
    # segments only for the segment Params, and says so)
    optional=("outputs/recommendations", "outputs/customer_segments"),
    reads=("curated/events", "curated/orders", "curated/coupon_campaigns"),
    default_ds=newest_partition("curated/events"),
    tags=("intervention",),
)
