"""The Airflow DAG ecom_risk, built by the factory from its declaration in ``ml/risk/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.risk.pipeline import RISK

build_dag(RISK)
