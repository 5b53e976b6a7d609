# sqs2pg container image.
#   docker build -t sqs2pg .
#   docker run --rm --read-only -e DATABASE_URL=... -e SQS_QUEUE_URLS=... -e AWS_REGION=... -p 8080:8080 sqs2pg
# scripts/image-check.sh builds it with podman and runs it as users will (CI runs that script).
# The base, pinned by digest: what was tested is what is built, until the pin is moved on purpose.
# python:3.12-slim-bookworm's multi-platform index (amd64, arm64, ...) of 2026-08-25, Python 3.12.14, as
# docker-library/repo-info lists it (repos/python/remote/3.12-slim-bookworm.md). To move it:
#   docker buildx imagetools inspect docker.io/library/python:3.12-slim-bookworm   (the Digest line)
# scripts/image-check.sh builds with a local stand-in (--build-arg PYTHON_IMAGE=...) where no registry answers.
# checkov:skip=CKV_DOCKER_7:The base is PYTHON_IMAGE, pinned by digest just below; checkov does not read an ARG's default.
ARG PYTHON_IMAGE=docker.io/library/python:3.12-slim-bookworm@sha256:0f5b26b9518d002b6173fd61daad821fa340635ebfec5bba471013f9ca114579

# --- build: a virtual environment with the pinned dependencies and the sqs2pg wheel, compiled, without pip ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
# A CA bundle for pip where the network needs one (`--secret id=ca,src=FILE`): mounted for this step only,
# never stored in a layer.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -r requirements.lock
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
# Then pip leaves the venv, and everything is compiled to bytecode once, here: at run time the root is
# read-only, and without .pyc files every start would compile the dependencies again (about a second).
# unchecked-hash: the image never changes, so Python need not check each .pyc against its source.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && /opt/venv/bin/pip install --no-compile --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

# --- runtime: the venv and a non-root user; no pip anywhere; nothing is written at run time ---
FROM ${PYTHON_IMAGE}
# The base's own pip (the venv's left above) goes too: nothing in a running container should install code.
RUN for py in /usr/local/bin/python3 /usr/bin/python3; do \
      [ -x "$py" ] || continue; \
      dir=$("$py" -c 'import os, pip; print(os.path.dirname(pip.__file__))' 2>/dev/null) || continue; \
      rm -rf "$dir" "$dir"-*.dist-info; \
    done \
    && IFS=: && for d in $PATH; do rm -f "$d"/pip "$d"/pip3 "$d"/pip3.*; done && unset IFS \
    && groupadd --system --gid 10001 sqs2pg \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sqs2pg
COPY --from=build /opt/venv /opt/venv
# PYTHONDONTWRITEBYTECODE: a read-only root filesystem works (the bytecode was compiled at build time).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_PORT=8080
USER 10001:10001
EXPOSE 8080
# Liveness only (ECS uses the task definition's own check; this one is for docker run and compose).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8080') + '/healthz', timeout=4)"]
# Exec form: sqs2pg runs as PID 1 with no shell in between, so SIGTERM from docker stop or ECS reaches it.
ENTRYPOINT ["sqs2pg"]
CMD ["run"]
