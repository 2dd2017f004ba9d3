"""The Airflow DAG ecom_delivery_routing, built by the factory from its declaration in ``ml/routing/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.routing.pipeline import DELIVERY_ROUTING

build_dag(DELIVERY_ROUTING)
