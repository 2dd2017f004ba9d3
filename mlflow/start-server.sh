#!/usr/bin/env bash
# MLflow tracking + model registry server of the production stack (docker/compose.yaml, docker/stack.sh).
# Backend: PostgreSQL (MLFLOW_BACKEND_STORE_URI); artifacts: proxied by the server itself from
# MLFLOW_ARTIFACTS_DESTINATION (a folder, or s3://...), so clients need only the server's URL and no shared disk.
# MLflow checks the Host header of every request: MLFLOW_ALLOWED_HOSTS must list the names clients use
# (mlflow:5000 inside compose, 127.0.0.1:PORT on one machine).
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg2://ecom:PASSWORD@postgres:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:=/data/ecom/mlartifacts}"
: "${MLFLOW_PORT:=5000}"
: "${MLFLOW_ALLOWED_HOSTS:=mlflow,mlflow:${MLFLOW_PORT},localhost,localhost:${MLFLOW_PORT},127.0.0.1,127.0.0.1:${MLFLOW_PORT}}"
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --allowed-hosts "$MLFLOW_ALLOWED_HOSTS" \
  --host "${MLFLOW_HOST:-0.0.0.0}" --port "$MLFLOW_PORT" \
  --workers "${MLFLOW_WORKERS:-2}"
