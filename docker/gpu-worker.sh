#!/usr/bin/env bash
# The Celery worker for queue "gpu" (training). It says which torch build and device it trains on, then runs one
# task at a time: a CUDA build where a GPU is present (the compose gpu profile installs it), the CPU otherwise.
#
# With ECOM_GPU_WORKER_HOME and ECOM_GPU_WORKER_HIDE (the stack on an object store) it shares no files with the rest
# of the stack: its own home, Airflow home and task logs, and a private mount namespace in which the folder
# ECOM_GPU_WORKER_HIDE (the stack's home, where the other worker keeps its files) is an empty tmpfs.
set -euo pipefail
if [ -n "${ECOM_GPU_WORKER_HIDE:-}" ] && [ -z "${ECOM_GPU_WORKER_ISOLATED:-}" ]; then
  exec unshare --map-root-user --mount env ECOM_GPU_WORKER_ISOLATED=1 bash "$0" "$@"
fi
if [ -n "${ECOM_GPU_WORKER_ISOLATED:-}" ]; then
  mount -t tmpfs -o size=1m ecom-hidden "$ECOM_GPU_WORKER_HIDE"
  export ECOM_HOME=$ECOM_GPU_WORKER_HOME AIRFLOW_HOME=$ECOM_GPU_WORKER_HOME/airflow
  export AIRFLOW__LOGGING__BASE_LOG_FOLDER=$ECOM_GPU_WORKER_HOME/logs/airflow
  mkdir -p "$AIRFLOW_HOME" "$AIRFLOW__LOGGING__BASE_LOG_FOLDER"
  if [ -n "$(ls -A "$ECOM_GPU_WORKER_HIDE")" ]; then echo "gpu worker: $ECOM_GPU_WORKER_HIDE is still visible" >&2; exit 1; fi
  echo "gpu worker: shares no files with the stack: home $ECOM_HOME, $ECOM_GPU_WORKER_HIDE hidden"
fi
python - <<'PY'
import torch
if torch.cuda.is_available():
    print(f"gpu worker: torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}", flush=True)
else:
    build = f"CUDA {torch.version.cuda} build, but no GPU visible" if torch.version.cuda else "CPU-only build"
    print(f"gpu worker: torch {torch.__version__} ({build}): training runs on the CPU", flush=True)
PY
exec airflow celery worker --queues gpu --celery-hostname gpu@%h --concurrency 1
