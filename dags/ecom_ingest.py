"""The Airflow DAG ecom_ingest, built by the factory from its declaration in ``ml/ingest_pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.ingest_pipeline import INGEST

build_dag(INGEST)
