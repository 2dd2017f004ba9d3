-- Databases beside Airflow's own (POSTGRES_DB=airflow): the MLflow backend and the serving store.
CREATE DATABASE mlflow;
CREATE DATABASE serving;
