"""The Airflow DAG ecom_demand_forecast, built by the factory from its declaration in ``ml/forecast/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.forecast.pipeline import DEMAND_FORECAST

build_dag(DEMAND_FORECAST)
