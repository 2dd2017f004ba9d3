"""ecom_risk, declared once: train the fraud and abuse model on matured labels -> register -> gate on PR-AUC against
the rules baseline -> champion -> decide (score ds's orders, hold or review the riskiest within the review budget,
with reasons) and publish ``order_risk``. Routing waits for it. The DAG, ``ecom risk`` and the Params derive from
it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.pipeline import Pipeline, PipelineConfig, Run, model_steps, newest_partition, option

if TYPE_CHECKING:
    from ml.risk.model import RiskTrees


@dataclass(frozen=True)
class RiskConfig(PipelineConfig):
    review_budget: int = option(3, "Orders a day the review team can check: the day's highest scores are held or reviewed", minimum=0, maximum=100_000)
    hold_score: float = option(0.5, "A flagged order scoring at least this is held (not shipped); the rest of the budget is reviewed", minimum=0, maximum=1)
    train_days: int = option(240, "Days of orders with matured labels the model learns from", minimum=14, maximum=3650)
    label_maturity_days: int = option(45, "Orders younger than this are left out of training: their chargebacks have not all arrived", minimum=0, maximum=365)
    holdout_days: int = option(30, "Newest matured days held out for the gate", minimum=1, maximum=365)
    min_labels: int = option(10, "Fewest matured labels (fraud or abuse) in the training days to train a model", minimum=1)
    anomaly_weight: float = option(0.0, "Weight of the IsolationForest's anomaly rank in the score (0: the supervised model alone)", minimum=0, maximum=1)
    n_estimators: int = option(300, "LightGBM: boosting rounds", minimum=1, maximum=10_000)
    learning_rate: float = option(0.05, "LightGBM: learning rate", exclusive_minimum=0, maximum=1)
    num_leaves: int = option(15, "LightGBM: leaves per tree", minimum=2, maximum=1024)
    min_child_samples: int = option(10, "LightGBM: fewest rows per leaf", minimum=1)
    gate_margin: float = option(0.02, "Relative PR-AUC gain over the rules baseline and the champion to become champion", minimum=0, maximum=0.99)
    seed: int = option(42, "Training seed", minimum=0)

    def trees(self) -> RiskTrees:
        from ml.risk.model import RiskTrees

        return RiskTrees(self.n_estimators, self.learning_rate, self.num_leaves, self.min_child_samples, self.seed)


def _decide(run: Run, champion: dict[str, Any], _: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.risk import decide

    return decide.decide_day(run.settings, run.ds, run.config, champion["version"])


RISK = Pipeline(
    name="risk",
    dag_id="ecom_risk",
    doc=__doc__ or "",
    config=RiskConfig,
    steps=model_steps("ml.risk.train", evaluate=None),
    publish=_decide,
    publish_name="decide",
    outputs=("outputs/order_risk",),
    triggers=("curated/orders",),
    reads=("curated/order_items", "curated/chargebacks"),
    default_ds=newest_partition("curated/orders"),
    tags=("risk",),
)
