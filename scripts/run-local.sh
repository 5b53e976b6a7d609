#!/usr/bin/env bash
# Run sqs2pg end to end on local defaults: the local PostgreSQL (database sqs2pg_local, migrated), moto's SQS
# server (through docker/moto/moto_sqs_server.py, which keeps FIFO groups in order as SQS does) with orders.fifo
# and its dead-letter queue, and the service. Ports are free ones picked at start (the machine may be shared);
# set AWS_ENDPOINT_URL_SQS to use an SQS server of your own and HTTP_PORT to fix the service's port.
# Ctrl-C stops the service cleanly, then the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh local
scripts/ensure-postgres.sh

free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432}
export DATABASE_URL=${DATABASE_URL:-$PGURL/sqs2pg_local}
export HTTP_PORT=${HTTP_PORT:-$(free_port)}

mkdir -p .local
emulator_pid=""
if [ -z "${AWS_ENDPOINT_URL_SQS:-}" ]; then
  port=$(free_port)
  export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$port
  # its own session, so the Ctrl-C meant for the service does not kill the emulator under it
  setsid .venv/bin/python docker/moto/moto_sqs_server.py "$port" >.local/moto.log 2>&1 &
  emulator_pid=$!
  trap '[ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do curl -s -o /dev/null "$AWS_ENDPOINT_URL_SQS" && break; sleep 0.1; done
fi

psql "$PGURL/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'sqs2pg_local'" | grep -q 1 \
  || psql "$PGURL/postgres" -qc "CREATE DATABASE sqs2pg_local"
export SQS_QUEUE_URLS=${SQS_QUEUE_URLS:-$(.venv/bin/python scripts/local_sqs.py create orders.fifo)}

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
