#!/usr/bin/env bash
# The live production stack as processes on this machine's PostgreSQL and Redis, supervised by honcho
# (docker/Procfile): Airflow with the CeleryExecutor (api-server, scheduler, dag-processor, triggerer, a worker on
# queue "default" and one on "gpu"), the MLflow server (PostgreSQL backend, proxied artifacts) and the serving
# store on PostgreSQL. The same services and settings as docker/compose.yaml, without containers.
#
# With an S3-compatible object store the workers share nothing but services: ECOM_STACK_S3_ENDPOINT (MinIO, or
# https://s3.<region>.amazonaws.com) with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, bucket ECOM_STACK_S3_BUCKET
# (created if missing); ECOM_STACK_S3=moto runs moto's S3 service (docker/loopback_s3.py) on 127.0.0.1:ECOM_STACK_S3_PORT as part of the
# stack instead (tests; it keeps objects in memory, so they are gone after `down`). The lake is then
# s3://<bucket>/lake (its commits locked through the serving database) and MLflow's artifacts s3://<bucket>/mlartifacts;
# the gpu worker gets a home of its own (ECOM_STACK_GPU_HOME) and runs in a mount namespace where the stack's home,
# the other worker's files included, is an empty folder. Without one, the lake and the artifacts stay in folders.
#
#   docker/stack.sh up       create the databases, migrate, start everything, wait until healthy
#   docker/stack.sh status   health of every service (exit 1 if one is down)
#   docker/stack.sh history  land the synthetic shop's history ending yesterday into the stack (ecom history ARGS)
#   docker/stack.sh down     stop everything (add --drop to drop the stack's databases too)
#
# Settings (environment or .env at the repository root; .env.example documents them): ECOM_STACK_HOME,
# ECOM_STACK_POSTGRES, ECOM_STACK_REDIS, ECOM_STACK_DB_PREFIX, ECOM_STACK_API_PORT, ECOM_STACK_MLFLOW_PORT and the
# secrets AIRFLOW_API_SECRET_KEY, AIRFLOW_JWT_SECRET, AIRFLOW_FERNET_KEY, AIRFLOW_ADMIN_PASSWORD (generated once
# into $ECOM_STACK_HOME/secrets.env when not given).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$REPO/.env" ]; then set -a; . "$REPO/.env"; set +a; fi
BIN=${ECOM_STACK_BIN:-$REPO/.venv/bin}
STACK=${ECOM_STACK_HOME:-$REPO/.ecom/stack}
PG=${ECOM_STACK_POSTGRES:-postgresql+psycopg2://postgres@127.0.0.1:5432}
REDIS=${ECOM_STACK_REDIS:-redis://127.0.0.1:6379/0}
PREFIX=${ECOM_STACK_DB_PREFIX:-ecom}
API_PORT=${ECOM_STACK_API_PORT:-8080}
MLFLOW_PORT=${ECOM_STACK_MLFLOW_PORT:-5000}
WAIT_S=${ECOM_STACK_WAIT_S:-120}
S3_BUCKET=${ECOM_STACK_S3_BUCKET:-ecom}
GPU_HOME=${ECOM_STACK_GPU_HOME:-$STACK-gpu}
if [ "${ECOM_STACK_S3:-}" = "moto" ]; then
  S3_ENDPOINT=http://127.0.0.1:${ECOM_STACK_S3_PORT:-9000}
  # moto accepts any key; these only keep boto3 from looking for real ones
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-moto} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-moto}
else
  S3_ENDPOINT=${ECOM_STACK_S3_ENDPOINT:-}
fi
PIDFILE=$STACK/honcho.pid
ENVFILE=$STACK/stack.env
export PATH="$BIN:$PATH"

secrets() {  # secrets from the environment, else generated once (never written into the repository)
  mkdir -p "$STACK" && chmod 700 "$STACK"
  if [ ! -f "$STACK/secrets.env" ]; then
    (umask 077; "$BIN/python" - > "$STACK/secrets.env" <<'PY'
import secrets
from cryptography.fernet import Fernet
print(f"AIRFLOW_API_SECRET_KEY={secrets.token_urlsafe(32)}")
print(f"AIRFLOW_JWT_SECRET={secrets.token_urlsafe(32)}")
print(f"AIRFLOW_FERNET_KEY={Fernet.generate_key().decode()}")
print(f"AIRFLOW_ADMIN_PASSWORD={secrets.token_urlsafe(12)}")
PY
    )
  fi
  local line name
  while read -r line; do
    name=${line%%=*}
    if [ -z "${!name:-}" ]; then export "$name=${line#*=}"; fi
  done < "$STACK/secrets.env"
}

write_env() {  # the one environment every process of the stack gets (honcho -e)
  mkdir -p "$STACK/logs" "$STACK/airflow"
  local artifacts=$STACK/mlartifacts
  if [ -n "$S3_ENDPOINT" ]; then artifacts=s3://$S3_BUCKET/mlartifacts; else mkdir -p "$artifacts"; fi
  printf '{"admin": "%s"}\n' "$AIRFLOW_ADMIN_PASSWORD" > "$STACK/airflow/passwords.json"
  (umask 077; cat > "$ENVFILE" <<EOF
ECOM_HOME=$STACK
ECOM_SERVING_URL=$PG/${PREFIX}_serving
MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
ECOM_SHARED_DATA=${ECOM_SHARED_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
ECOM_SCALE=${ECOM_SCALE:-demo}
ECOM_ABUSE_RATE=${ECOM_ABUSE_RATE:-0.01}
ECOM_STACK_API_PORT=$API_PORT
ECOM_STACK_LOG_PORT=${ECOM_STACK_LOG_PORT:-8793}
ECOM_WORKER_CONCURRENCY=${ECOM_WORKER_CONCURRENCY:-4}
MLFLOW_BACKEND_STORE_URI=$PG/${PREFIX}_mlflow
MLFLOW_ARTIFACTS_DESTINATION=$artifacts
MLFLOW_PORT=$MLFLOW_PORT
MLFLOW_HOST=127.0.0.1
AIRFLOW_HOME=$STACK/airflow
AIRFLOW__CORE__DAGS_FOLDER=$REPO/dags
AIRFLOW__CORE__PLUGINS_FOLDER=$REPO/plugins
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__FERNET_KEY=$AIRFLOW_FERNET_KEY
AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}
AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$API_PORT/execution/
AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STACK/airflow/passwords.json
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$PG/${PREFIX}_airflow
AIRFLOW__CELERY__BROKER_URL=$REDIS
AIRFLOW__CELERY__RESULT_BACKEND=db+$PG/${PREFIX}_airflow
AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=ecom_celery.CELERY_CONFIG
AIRFLOW__API__BASE_URL=http://127.0.0.1:$API_PORT
AIRFLOW__API__SECRET_KEY=$AIRFLOW_API_SECRET_KEY
AIRFLOW__API_AUTH__JWT_SECRET=$AIRFLOW_JWT_SECRET
AIRFLOW__LOGGING__BASE_LOG_FOLDER=$STACK/logs/airflow
GX_ANALYTICS_ENABLED=False
PYTHONUNBUFFERED=1
EOF
  )
  if [ -n "$S3_ENDPOINT" ]; then
    mkdir -p "$GPU_HOME"
    (umask 077; cat >> "$ENVFILE" <<EOF
ECOM_LAKE_URI=s3://$S3_BUCKET/lake
ECOM_LAKE_LOCK_URL=$PG/${PREFIX}_serving
ECOM_GPU_WORKER_HOME=$GPU_HOME
ECOM_GPU_WORKER_HIDE=$STACK
MLFLOW_S3_ENDPOINT_URL=$S3_ENDPOINT
AWS_ENDPOINT_URL=$S3_ENDPOINT
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID for the object store at $S3_ENDPOINT}
AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY for the object store at $S3_ENDPOINT}
AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
ECOM_STACK_S3_BUCKET=$S3_BUCKET
EOF
    )
  fi
  # the processes: docker/Procfile, and the object store when the stack runs its own
  cp "$REPO/docker/Procfile" "$STACK/Procfile"
  if [ "${ECOM_STACK_S3:-}" = "moto" ]; then
    echo "s3: python docker/loopback_s3.py --port ${S3_ENDPOINT##*:}" >> "$STACK/Procfile"
  fi
  # Params for scheduled and Asset-triggered runs of this deployment (Airflow Variables <dag_id>_params)
  local name
  for name in $(compgen -e | grep '^AIRFLOW_VAR_' || true); do
    printf "%s='%s'\n" "$name" "${!name}" >> "$ENVFILE"
  done
}

databases() {  # $1: create | drop
  "$BIN/python" - "$1" "$PG" "$PREFIX" <<'PY'
import sys
import sqlalchemy as sa
action, server, prefix = sys.argv[1:]
engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
with engine.connect() as conn:
    for name in (f"{prefix}_airflow", f"{prefix}_mlflow", f"{prefix}_serving"):
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
        if action == "create" and not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            print(f"database {name}: created")
        elif action == "drop" and exists:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            print(f"database {name}: dropped")
PY
}

bucket() {  # $1: check | create; the artifacts' bucket on the object store
  "$BIN/python" - "$1" "$S3_ENDPOINT" "$S3_BUCKET" <<'PY'
import sys
import boto3
import botocore.exceptions
action, endpoint, name = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
try:
    s3.head_bucket(Bucket=name)
    print(f"object store: healthy, bucket {name} ({endpoint})")
except botocore.exceptions.ClientError as exc:
    if action != "create" or exc.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
        sys.exit(f"object store: bucket {name} at {endpoint}: {exc}")
    s3.create_bucket(Bucket=name)
    print(f"object store: created bucket {name} ({endpoint})")
except botocore.exceptions.EndpointConnectionError as exc:
    sys.exit(f"object store: DOWN ({exc})")
PY
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

check() {  # one line per service; returns 1 if any is down
  local ok=0
  set -a; . "$ENVFILE"; set +a
  if curl -sf "http://127.0.0.1:$API_PORT/api/v2/monitor/health" > "$STACK/health.json"; then
    "$BIN/python" - "$STACK/health.json" <<'PY' || ok=1
import json, sys
health = json.load(open(sys.argv[1]))
bad = {k: v.get("status") for k, v in health.items() if isinstance(v, dict) and v.get("status") not in ("healthy", None)}
print("airflow api-server: healthy; " + ", ".join(f"{k} {v.get('status')}" for k, v in health.items() if isinstance(v, dict)))
sys.exit(1 if bad else 0)
PY
  else echo "airflow api-server: DOWN (http://127.0.0.1:$API_PORT)"; ok=1; fi
  if curl -sf "http://127.0.0.1:$MLFLOW_PORT/health" > /dev/null; then echo "mlflow server: healthy (http://127.0.0.1:$MLFLOW_PORT)"
  else echo "mlflow server: DOWN (http://127.0.0.1:$MLFLOW_PORT)"; ok=1; fi
  if [ -n "$S3_ENDPOINT" ]; then bucket check || ok=1; fi
  local host; host=$(hostname)
  local pong; pong=$("$BIN/celery" --app airflow.providers.celery.executors.celery_executor.app inspect ping \
    --destination "default@$host,gpu@$host" --timeout 5 2>/dev/null || true)
  for worker in default gpu; do
    if grep -q "$worker@$host: OK" <<< "$pong"; then echo "celery worker $worker@$host: healthy"
    else echo "celery worker $worker@$host: DOWN"; ok=1; fi
  done
  return $ok
}

up() {
  if running; then echo "the stack is already running (pid $(cat "$PIDFILE")); docker/stack.sh status"; return 0; fi
  secrets
  write_env
  databases create
  set -a; . "$ENVFILE"; set +a
  echo "migrating the Airflow metadata database"
  airflow db migrate > "$STACK/logs/migrate.log" 2>&1 || { tail -20 "$STACK/logs/migrate.log"; exit 1; }
  setsid "$BIN/honcho" start -f "$STACK/Procfile" -e "$ENVFILE" -d "$REPO" > "$STACK/logs/stack.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  local started=$SECONDS
  if [ -n "$S3_ENDPOINT" ]; then
    until bucket create > "$STACK/logs/bucket.txt" 2>&1; do
      if ! running; then echo "the stack stopped while starting:"; tail -40 "$STACK/logs/stack.log"; exit 1; fi
      if (( SECONDS - started > WAIT_S )); then cat "$STACK/logs/bucket.txt"; echo "no object store at $S3_ENDPOINT after ${WAIT_S}s"; exit 1; fi
      sleep 1
    done
  fi
  until check > "$STACK/logs/health.txt" 2>&1; do
    if ! running; then echo "the stack stopped while starting:"; tail -40 "$STACK/logs/stack.log"; exit 1; fi
    if (( SECONDS - started > WAIT_S )); then
      cat "$STACK/logs/health.txt"; echo "not healthy after ${WAIT_S}s; logs: $STACK/logs/stack.log"; exit 1
    fi
    sleep 3
  done
  cat "$STACK/logs/health.txt"
  echo "healthy after $((SECONDS - started))s"
  echo "Airflow UI  http://127.0.0.1:$API_PORT  (user admin, password in $STACK/airflow/passwords.json)"
  echo "MLflow UI   http://127.0.0.1:$MLFLOW_PORT"
  echo "logs        $STACK/logs/stack.log (every process, prefixed with its name)"
}

down() {
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "stopped the stack (pid $pid)"
  else
    echo "the stack is not running"
  fi
  rm -f "$PIDFILE"
  if [ "${1:-}" = "--drop" ]; then databases drop; fi
}

status() {
  if ! running; then echo "the stack is not running (docker/stack.sh up)"; exit 1; fi
  echo "honcho pid $(cat "$PIDFILE")"
  check
}

history() {
  if [ ! -f "$ENVFILE" ]; then echo "no $ENVFILE: run docker/stack.sh up first"; exit 1; fi
  set -a; . "$ENVFILE"; set +a
  "$BIN/ecom" history "$@"
}

case "${1:-}" in
  up) up ;;
  history) shift; history "$@" ;;
  down) shift; down "$@" ;;
  status) status ;;
  *) echo "usage: $0 up | status | history [--scale S --days N] | down [--drop]"; exit 2 ;;
esac
