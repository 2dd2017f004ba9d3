#!/usr/bin/env bash
# The Celery worker for queue "gpu" (training). It says which torch build and device it trains on, then runs one
# task at a time: a CUDA build where a GPU is present (the compose gpu profile installs it), the CPU otherwise.
set -euo pipefail
python - <<'PY'
import torch
if torch.cuda.is_available():
    print(f"gpu worker: torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}", flush=True)
else:
    build = f"CUDA {torch.version.cuda} build, but no GPU visible" if torch.version.cuda else "CPU-only build"
    print(f"gpu worker: torch {torch.__version__} ({build}): training runs on the CPU", flush=True)
PY
exec airflow celery worker --queues gpu --celery-hostname gpu@%h --concurrency 1
