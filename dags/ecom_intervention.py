"""The Airflow DAG ecom_intervention, built by the factory from its declaration in ``ml/intervention/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.intervention.pipeline import INTERVENTION

build_dag(INTERVENTION)
