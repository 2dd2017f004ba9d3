"""The Airflow DAG ecom_inventory_plan, built by the factory from its declaration in ``ml/inventory/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.inventory.pipeline import INVENTORY_PLAN

build_dag(INVENTORY_PLAN)
