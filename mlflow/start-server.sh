#!/usr/bin/env bash
# MLflow tracking + model registry server for the production-like stack (docker/compose.yaml).
# Backend: PostgreSQL (MLFLOW_BACKEND_STORE_URI); artifacts: served by the server itself from
# MLFLOW_ARTIFACTS_DESTINATION, so clients need only http://mlflow:5000 and no shared filesystem.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg2://ecom:ecom@postgres:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:=/data/ecom/mlartifacts}"
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host 0.0.0.0 --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}"
