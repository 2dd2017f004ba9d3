"""The Airflow DAG ecom_segments, built by the factory from its declaration in ``ml/segments/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.segments.pipeline import SEGMENTS

build_dag(SEGMENTS)
