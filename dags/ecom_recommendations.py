"""The Airflow DAG ecom_recommendations, built by the factory from its declaration in ``ml/recsys/pipeline.py`` (config, steps, inputs, outputs)."""

from ecom_factory import build_dag
from ml.recsys.pipeline import RECOMMENDATIONS

build_dag(RECOMMENDATIONS)
