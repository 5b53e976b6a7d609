#!/usr/bin/env bash
# Build the Dockerfile with podman and run the image as users will: read-only root, every capability dropped,
# no-new-privileges, the image's own user (uid/gid 10001). `migrate`, `check`, `run` against the local
# PostgreSQL and moto's SQS server (both on loopback, free ports, the container on the host network); messages
# sent land in `events`; /healthz, /metrics and the image's HEALTHCHECK answer; a plain `podman stop` (10 s
# before SIGKILL, as `docker stop`) ends it with exit 0. Any failure exits non-zero with the reason; nothing is
# skipped.
#
# No registry is reachable on this project's machines, so when the pinned base image cannot be pulled a
# stand-in is built locally (debootstrap of Debian bookworm with its python3 and pip) and given to the build
# as --build-arg PYTHON_IMAGE.
# docs/operations.md, "Container image", says what that does not cover.
set -euo pipefail
cd "$(dirname "$0")/.."
PINNED=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)   # the base the Dockerfile names, by digest
BASE=${PINNED%@*}                                      # its tag: the stand-in's name
[ -n "$PINNED" ] && [ "$PINNED" != "$BASE" ] || { echo "image-check: the Dockerfile's PYTHON_IMAGE is not pinned by digest" >&2; exit 1; }
IMAGE=localhost/sqs2pg:check
NAME=sqs2pg-check-$$
WORK=$(mktemp -d /tmp/sqs2pg-image-check.XXXXXX)
PY=.venv/bin/python
fail() { echo "image-check: FAILED: $*" >&2; exit 1; }
step() { echo "== image-check: $*"; }

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc debootstrap)"
command -v runc >/dev/null || fail "runc is not installed (apt-get install runc; crun fails on this machine kind)"
scripts/bootstrap.sh
# PostgreSQL: PGURL's server (the container reaches it on the host network), else the local one.
PGURL=${PGURL:-}
[ -n "$PGURL" ] || { scripts/ensure-postgres.sh PGURL; PGURL=postgresql://postgres@127.0.0.1:5432; }

# runc and explicit limits: what podman needs on this machine kind (higher limits are refused).
cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$WORK/containers.conf

moto_pid=""
db=""
cleanup() {
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  [ -n "$db" ] && psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the base image -------------------------------------------------------------------------------------
# The pinned base where a registry answers; else a stand-in built here, named for what it stands in for
# (its suffix changes when what it holds does, so an older stand-in is not reused).
STANDIN=localhost/sqs2pg-standin:python3-slim-bookworm-pip
base_arg=()
if podman image exists "$PINNED" || podman pull -q "$PINNED" >/dev/null 2>&1; then
  step "base $PINNED"
else
  base_arg=(--build-arg "PYTHON_IMAGE=$STANDIN")
  if ! podman image exists "$STANDIN"; then
    command -v debootstrap >/dev/null || fail "no registry reachable and debootstrap is not installed"
    step "no registry: building a stand-in for $BASE (debootstrap bookworm + python3; about a minute)"
    root=$WORK/rootfs
    # python3-pip: the real base has a pip on PATH too, which the Dockerfile must remove
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$root" http://deb.debian.org/debian \
      >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
           "$root"/etc/resolv.conf "$root"/etc/hostname
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    # python on the PATH where the real image has it
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
      | podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
          --message "local stand-in for $BASE: debootstrap bookworm minbase + python3 + pip" - "$STANDIN" >/dev/null
    rm -rf "$root"
  fi
  echo "   base: the local stand-in for $BASE, $(podman run --rm --pull=never "$STANDIN" python3 --version 2>/dev/null)"
fi

# --- build ------------------------------------------------------------------------------------------------
step "podman build"
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
started=$(date +%s)
podman build --format docker --pull=never "${secret[@]}" "${base_arg[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; fail "podman build failed"; }
echo "   built in $(( $(date +%s) - started )) s; size $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# --- what the image is --------------------------------------------------------------------------------------
inspect() { podman image inspect --format "$1" "$IMAGE"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || fail "USER is '$(inspect '{{.Config.User}}')', not 10001:10001"
inspect '{{json .Config.Healthcheck}}' | grep -q healthz || fail "the image has no HEALTHCHECK (build with --format docker)"
run_in() { podman run --rm --pull=never --read-only --cap-drop=ALL --security-opt=no-new-privileges --network=host "$@" 2>"$WORK/podman.err"; }
[ "$(run_in --entrypoint id "$IMAGE" -u):$(run_in --entrypoint id "$IMAGE" -g)" = "10001:10001" ] || fail "the process does not run as 10001:10001"
# No pip anywhere: no pip* command on PATH, and no python on PATH (the venv's, the base's) that imports it.
# shellcheck disable=SC2016
found=$(run_in --entrypoint sh "$IMAGE" -c '
  for d in $(echo "$PATH" | tr : " "); do
    for f in "$d"/pip "$d"/pip3 "$d"/pip3.*; do [ -e "$f" ] && echo "$f"; done
    for py in "$d"/python "$d"/python3; do [ -x "$py" ] && "$py" -c "import pip" 2>/dev/null && echo "$py imports pip"; done
  done; true') || fail "could not look for pip in the image"
[ -z "$found" ] || fail "pip is in the runtime image: $(echo "$found" | tr '\n' ' ')"
run_in --entrypoint python "$IMAGE" -c 'import sqs2pg.consume.app as app, sys; sys.exit(0 if app.__cached__ and __import__("os").path.exists(app.__cached__) else 1)' \
  || fail "sqs2pg's modules have no compiled bytecode in the image"
version=$(run_in "$IMAGE" --version) || fail "sqs2pg --version failed"
echo "   $version, user 10001:10001, HEALTHCHECK present, no pip, bytecode compiled"

# --- the services it talks to: the local PostgreSQL and moto on free loopback ports -------------------------
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sqs_port=$(free_port)
http_port=$(free_port)
# sqs2pg's own local SQS (moto, its FIFO receive fixed), with the queue and its DLQ; it prints their settings
"$PY" -m sqs2pg local-sqs --port "$sqs_port" --queue image-check.fifo >"$WORK/sqs.env" 2>"$WORK/moto.log" &
moto_pid=$!
for _ in $(seq 1 300); do grep -q SQS_QUEUE_URLS "$WORK/sqs.env" 2>/dev/null && break; sleep 0.1; done
grep -q SQS_QUEUE_URLS "$WORK/sqs.env" || fail "the local SQS did not start: $(tail -3 "$WORK/moto.log")"
# shellcheck disable=SC1091
. "$WORK/sqs.env"
queue_url=$SQS_QUEUE_URLS
db=sqs2pg_image_check_$$
psql "$PGURL/postgres" -qc "CREATE DATABASE \"$db\""
env_args=(-e DATABASE_URL="$PGURL/$db" -e SQS_QUEUE_URLS="$queue_url" -e HTTP_PORT="$http_port"
          -e AWS_ENDPOINT_URL_SQS -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY)

# --- migrate, check, run -----------------------------------------------------------------------------------------
step "migrate, check"
run_in "${env_args[@]}" "$IMAGE" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; fail "migrate"; }
run_in "${env_args[@]}" "$IMAGE" check >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; fail "check"; }
sed 's/^/   /' "$WORK/check.log"

step "run"
podman run -d --name "$NAME" --pull=never --read-only --cap-drop=ALL --security-opt=no-new-privileges --network=host \
  "${env_args[@]}" "$IMAGE" >/dev/null 2>>"$WORK/podman.err" || fail "podman run"
ready=""
for _ in $(seq 1 150); do
  curl -sf -o /dev/null "http://127.0.0.1:$http_port/readyz" && { ready=1; break; }
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
  sleep 0.2
done
[ -n "$ready" ] || { podman logs "$NAME" >&2; fail "/readyz never answered 200"; }
# the producer side from the image too: 20 writes as JSON lines on stdin
for i in $(seq 1 20); do echo "{\"group\": \"g$((i % 3))\", \"body\": {\"seq\": $i}}"; done \
  | run_in -i "${env_args[@]}" "$IMAGE" send >"$WORK/send.log" || { cat "$WORK/send.log" "$WORK/podman.err" >&2; fail "sqs2pg send"; }
grep -q "^20 sent" "$WORK/send.log" || { cat "$WORK/send.log" >&2; fail "sqs2pg send did not send 20"; }
landed=""
for _ in $(seq 1 150); do
  n=$(psql "$PGURL/$db" -Atc "SELECT count(*) FROM events")
  [ "$n" = 20 ] && { landed=1; break; }
  sleep 0.2
done
[ -n "$landed" ] || { podman logs "$NAME" >&2; fail "20 messages sent, $n in table events"; }
curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null || fail "/healthz"
curl -sf "http://127.0.0.1:$http_port/metrics" > "$WORK/metrics.txt" || fail "/metrics"
grep '^sqs2pg_messages_total{' "$WORK/metrics.txt" | grep 'outcome="committed"' | grep -q 'queue="image-check.fifo".* 20.0$' \
  || { grep messages_total "$WORK/metrics.txt" >&2; fail "/metrics does not count the 20 commits"; }
podman healthcheck run "$NAME" >/dev/null 2>>"$WORK/podman.err" || fail "the image's HEALTHCHECK failed"
echo "   20 messages in table events; /readyz, /healthz, /metrics and the HEALTHCHECK answer"

step "podman stop (10 s before SIGKILL, as docker stop)"
started=$(date +%s.%N)
podman stop "$NAME" >/dev/null 2>>"$WORK/podman.err"
took=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { podman logs "$NAME" | tail -20 >&2; fail "exit code $code after podman stop ($took s)"; }
podman logs "$NAME" 2>/dev/null | grep -q '"event": "stopped"' || fail "no \"stopped\" line in the logs"
echo "   exit 0 after $took s"
podman rm "$NAME" >/dev/null 2>&1
podman rmi "$IMAGE" >/dev/null 2>&1 || echo "   (could not remove $IMAGE)"
echo "image-check: passed"
