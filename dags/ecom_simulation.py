"""The Airflow DAG ecom_simulation, built by the factory from its declaration in ``ml/simulation/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.simulation.pipeline import SIMULATION

build_dag(SIMULATION)
