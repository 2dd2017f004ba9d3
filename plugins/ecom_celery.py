"""The Celery workers' configuration (``[celery] celery_config_options``): Airflow's defaults, plus the libraries the
pipelines' tasks import, imported once when a worker starts.

On Linux, Airflow forks every task from the worker process that picked it up, so a library the worker has imported
is already in the task's memory. Left to the tasks, every task imports what it uses again: pandas, Delta Lake and
MLflow for a step that publishes or registers, Great Expectations for the gate. On the tiny shop those imports are
most of a short task's time. Only third-party libraries are preloaded: the project's own modules keep per-process
state (open Delta tables, database engines) that each task must build for itself. The only threads these imports
start are OpenBLAS's pools and Arrow's and delta-rs's jemalloc background threads, which handle a fork themselves
(the pipelines' own process pools already fork after importing them), and none touches a GPU: CUDA is first
initialised inside the training task.

The scheduler reads this configuration too, to send tasks; only a worker imports the ``imports`` it lists. It lives
in ``plugins/`` (on Airflow's path) because it extends Airflow's own configuration, and ``ml/`` never imports
Airflow."""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

PRELOADED = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.fs",
    "deltalake",
    "sqlalchemy",
    "psycopg2",
    "scipy.sparse",
    "scipy.stats",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.mixture",
    "numba",
    "mlxtend.frequent_patterns",
    "lightgbm",
    "statsmodels.tsa.exponential_smoothing.ets",
    "pulp",
    "highspy",
    "osmnx",
    "pyvrp",
    "mlflow",
    "mlflow.pyfunc",
    "great_expectations",
    "torch",
    "pytorch_lightning",
)
"""Libraries a worker imports before it takes tasks (Celery's ``imports`` setting)."""

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": PRELOADED}
