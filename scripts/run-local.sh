#!/usr/bin/env bash
# Run sqs2pg end to end on local defaults: the local PostgreSQL (database sqs2pg_local, migrated), a local SQS
# (`sqs2pg local-sqs`: moto's server, which it fixes to keep FIFO groups in order as SQS does) with orders.fifo
# and its dead-letter queue, and the service. Ports are free ones picked at start (the machine may be shared);
# set AWS_ENDPOINT_URL_SQS to use an SQS server of your own and HTTP_PORT to fix the service's port.
# Ctrl-C stops the service cleanly, then the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh local
# The local PostgreSQL only when no other server is named (DATABASE_URL: that database as it is; PGURL: a server
# on which database sqs2pg_local is made).
[ -n "${DATABASE_URL:-}${PGURL:-}" ] || scripts/ensure-postgres.sh PGURL

free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432}
export DATABASE_URL=${DATABASE_URL:-$PGURL/sqs2pg_local}
export HTTP_PORT=${HTTP_PORT:-$(free_port)}

mkdir -p .local
emulator_pid=""
if [ -z "${AWS_ENDPOINT_URL_SQS:-}" ]; then
  # sqs2pg's own local SQS (`sqs2pg local-sqs`: moto, its FIFO receive fixed) with orders.fifo and its DLQ, in its
  # own session, so the Ctrl-C meant for the service does not kill the emulator under it; it prints the settings
  rm -f .local/sqs.env
  setsid .venv/bin/sqs2pg local-sqs --port "$(free_port)" --queue orders.fifo >.local/sqs.env 2>.local/moto.log &
  emulator_pid=$!
  trap '[ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do grep -q SQS_QUEUE_URLS .local/sqs.env 2>/dev/null && break; sleep 0.1; done
  grep -q SQS_QUEUE_URLS .local/sqs.env || { tail -5 .local/moto.log >&2; echo "run-local: the local SQS did not start" >&2; exit 1; }
  queue_urls=${SQS_QUEUE_URLS:-}
  # shellcheck disable=SC1091
  . .local/sqs.env
  export SQS_QUEUE_URLS=${queue_urls:-$SQS_QUEUE_URLS}
fi

if [ "$DATABASE_URL" = "$PGURL/sqs2pg_local" ]; then
  psql "$PGURL/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'sqs2pg_local'" | grep -q 1 \
    || psql "$PGURL/postgres" -qc "CREATE DATABASE sqs2pg_local"
fi
# an SQS server of your own (AWS_ENDPOINT_URL_SQS): orders.fifo and its DLQ are made there, as local-sqs makes them
export SQS_QUEUE_URLS=${SQS_QUEUE_URLS:-$(.venv/bin/python -c \
  'import boto3; from sqs2pg.sqs.local import create_queue; print(create_queue(boto3.client("sqs"), "orders.fifo"))')}

.venv/bin/sqs2pg migrate >/dev/null
.venv/bin/sqs2pg check
cat >&2 <<HINT
sqs2pg is starting: http://127.0.0.1:$HTTP_PORT/metrics, /healthz, /readyz
In another shell, send a write, see it land in table events, and ask for its status:
  export AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
  export SQS_QUEUE_URLS=$SQS_QUEUE_URLS DATABASE_URL=$DATABASE_URL
  echo '{"group": "order-1", "key": "order-1-created", "body": {"hello": "world"}}' | .venv/bin/sqs2pg send
  psql \$DATABASE_URL -c 'SELECT id, message_group_id, body, committed_at FROM events'
  .venv/bin/sqs2pg status order-1-created
HINT
# The service runs in its own session and this script hands it one SIGTERM, whichever way the stop comes (Ctrl-C
# here, or SIGINT/SIGTERM to this script's PID): a clean stop, then the emulator goes (the EXIT trap above).
setsid .venv/bin/sqs2pg run &
service_pid=$!
trap 'kill -TERM "$service_pid" 2>/dev/null || true' INT TERM
status=0
wait "$service_pid" || status=$?
while kill -0 "$service_pid" 2>/dev/null; do
  status=0
  wait "$service_pid" || status=$?
done
exit "$status"
