"""ecom_recommendations, declared once: train (gpu queue) -> evaluate -> register -> gate -> champion ->
score shards (mapped) -> publish ``recommendations``. The DAG, ``ecom recommend`` and the Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml.errors import ConfigError
from ml.pipeline import (
    FanOut,
    Pipeline,
    PipelineConfig,
    Run,
    model_steps,
    newest_partition,
    option,
    publish_shards,
)


@dataclass(frozen=True)
class RecsysConfig(PipelineConfig):
    model: str = option(
        "sasrec",
        "Model to train (blend: EASE mixed with recent popularity, the mix chosen on a validation window)",
        choices=("sasrec", "ease", "blend", "popularity"),
    )
    epochs: int = option(30, "SASRec: most epochs (early stopping on validation NDCG@10)", minimum=1, maximum=500)
    patience: int = option(5, "SASRec: epochs without improvement before stopping", minimum=1, maximum=100)
    k: int = option(100, "Recommendations per customer", minimum=1, maximum=1000)
    holdout_days: int = option(14, "Temporal holdout length in days", minimum=1, maximum=180)
    history_days: int = option(365, "Days of events to train and score on", minimum=2, maximum=3650)
    popularity_days: int = option(28, "Recent popularity window (baseline and cold-start fallback)", minimum=1, maximum=365)
    event_types: tuple[str, ...] = option(("purchase",), "Event types that count as interactions", choices=("view", "cart", "purchase"))
    repeat_purchases: bool = option(
        False, "Recommend products the customer already bought (a shop of consumables); the holdout then counts repurchases as hits"
    )
    ease_l2: float = option(200.0, "EASE: L2 regularisation", exclusive_minimum=0)
    blend_recency: bool = option(
        True,
        "blend: also choose on the validation window how much less a customer's earlier purchases count, and how fast "
        "EASE's share fades with the days since their last purchase",
    )
    margin: float = option(0.01, "Relative NDCG@10 gain to replace the champion", minimum=0, maximum=1)
    shards: int = option(4, "Parallel scoring tasks", minimum=1, maximum=256)
    seed: int = option(42, "Training seed", minimum=0)

    def check(self) -> None:
        if self.holdout_days >= self.history_days:
            raise ConfigError(f"holdout_days={self.holdout_days} leaves no training data in history_days={self.history_days}")
        if self.popularity_days > self.history_days:
            raise ConfigError(f"popularity_days={self.popularity_days} counts further back than the history_days={self.history_days} that are loaded")
        if not self.event_types:
            raise ConfigError("event_types must name at least one event type")


def _score(run: Run, shard: int, champion: dict[str, Any]) -> dict[str, Any]:
    from ml.recsys import score

    c = run.config
    return score.score_shard(run.settings, run.ds, shard, c.shards, champion["version"], c.k, c.popularity_days, c.history_days)


RECOMMENDATIONS = Pipeline(
    name="recommend",
    dag_id="ecom_recommendations",
    doc=__doc__ or "",
    config=RecsysConfig,
    steps=model_steps("ml.recsys.train", train_queue="gpu", items=lambda run: list(range(run.config.shards))),
    fan_out=FanOut("score", _score),
    publish=publish_shards("ml.recsys.io", "customers"),
    outputs=("outputs/recommendations",),
    triggers=("curated/events", "curated/customers", "curated/products"),
    default_ds=newest_partition("curated/events"),
    tags=("recommendations", "gpu"),
)
