"""ecom_segments, declared once: segment (RFM codes, and a clustering of the customers' behaviour with k chosen by
stability and labels matched to yesterday's) -> publish ``customer_segments``, ``segment_profiles`` and the HTML
report in one commit. The DAG, ``ecom segments`` and the Params derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.errors import ConfigError
from ml.pipeline import Pipeline, PipelineConfig, Run, Step, newest_partition, option

if TYPE_CHECKING:
    from ml.segments.model import ClusterConfig


@dataclass(frozen=True)
class SegmentsConfig(PipelineConfig):
    lookback_days: int = option(365, "Behaviour of the days before ds that the features describe", minimum=28, maximum=3650)
    k_min: int = option(2, "Fewest segments to consider", minimum=2, maximum=20)
    k_max: int = option(8, "Most segments to consider", minimum=2, maximum=20)
    min_stability: float = option(0.95, "Least split-half stability (adjusted Rand index) of a k that may be chosen", minimum=0, maximum=1)
    stability_fits: int = option(4, "Split-half refits per k when measuring its stability", minimum=2, maximum=50)
    keep_k_margin: float = option(0.01, "Keep yesterday's number of segments while its BIC is within this share of the best", minimum=0, maximum=1)
    history_days: int = option(90, "Days of earlier profiles the report plots", minimum=1, maximum=3650)
    seed: int = option(42, "Clustering seed", minimum=0)

    def check(self) -> None:
        if self.k_min > self.k_max:
            raise ConfigError(f"segments: k_min {self.k_min} is above k_max {self.k_max}")

    def clustering(self) -> ClusterConfig:
        from ml.segments.model import ClusterConfig

        return ClusterConfig(self.k_min, self.k_max, self.min_stability, self.stability_fits, self.keep_k_margin, self.seed)


def _segment(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
    from ml.segments import segment

    return segment.segment_day(run.settings, run.ds, run.config)


def _publish(run: Run, segmented: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from ml.segments import io

    return {"ds": run.ds.isoformat(), **io.publish(run.settings, run.ds, run.config.history_days), "k": segmented["k"]}


SEGMENTS = Pipeline(
    name="segments",
    dag_id="ecom_segments",
    doc=__doc__ or "",
    config=SegmentsConfig,
    steps=(Step("segment", _segment),),
    publish=_publish,
    outputs=("outputs/customer_segments", "outputs/segment_profiles"),
    triggers=("curated/events", "curated/orders"),
    reads=("curated/order_items",),
    default_ds=newest_partition("curated/events"),
    tags=("segments",),
)
