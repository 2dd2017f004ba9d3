"""ecom_associations, declared once: mine frequently-bought-together rules (FP-growth) from the order baskets of
the ``window_days`` through ds -> publish ``product_associations``. The DAG, ``ecom associations`` and the Params
derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.pipeline import Pipeline, PipelineConfig, Run, Step, newest_partition, option

if TYPE_CHECKING:
    from ml.associations.model import RuleConfig


@dataclass(frozen=True)
class AssociationsConfig(PipelineConfig):
    window_days: int = option(90, "Days of order baskets to mine, through ds", minimum=1, maximum=3650)
    min_support: float = option(0.002, "Least share of baskets that hold both products", exclusive_minimum=0, maximum=1)
    min_confidence: float = option(0.05, "Least confidence: share of the product's baskets that also hold the other", minimum=0, maximum=1)
    min_lift: float = option(1.0, "Least lift (1: bought together no more often than by chance)", minimum=0)
    max_per_product: int = option(20, "Most associated products kept per product (highest confidence first)", minimum=1, maximum=1000)

    def rules(self) -> RuleConfig:
        from ml.associations.model import RuleConfig

        return RuleConfig(self.min_support, self.min_confidence, self.min_lift, self.max_per_product)


def _mine(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.associations import mine

    return mine.mine_day(run.settings, run.ds, run.config)


def _publish(run: Run, mined: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.associations import io

    return {"ds": run.ds.isoformat(), "rows": io.publish(run.settings, run.ds), **{k: mined[k] for k in ("baskets", "rules")}}


ASSOCIATIONS = Pipeline(
    name="associations",
    dag_id="ecom_associations",
    doc=__doc__ or "",
    config=AssociationsConfig,
    steps=(Step("mine", _mine),),
    publish=_publish,
    outputs=("outputs/product_associations",),
    triggers=("curated/orders", "curated/order_items"),
    default_ds=newest_partition("curated/orders"),
    tags=("associations",),
)
