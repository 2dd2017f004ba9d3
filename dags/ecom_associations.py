"""The Airflow DAG ecom_associations, built by the factory from its declaration in ``ml/associations/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.associations.pipeline import ASSOCIATIONS

build_dag(ASSOCIATIONS)
