# sqs2pg container image.
#   docker build -t sqs2pg .
#   docker run --rm -e DATABASE_URL=... -e SQS_QUEUE_URLS=... -e AWS_REGION=... -p 8080:8080 sqs2pg
# Size: docker image ls sqs2pg (not measured here: this project's machines have no Docker engine).

# --- build: a virtual environment with the pinned dependencies and sqs2pg itself ---
FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-compile -r requirements.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/venv/bin/pip install --no-compile --no-deps .

# --- runtime: the venv, the migrations, a non-root user; nothing is written at run time ---
FROM python:3.12-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sqs2pg
COPY --from=build /opt/venv /opt/venv
COPY migrations /app/migrations
# PYTHONDONTWRITEBYTECODE: no .pyc writes, so a read-only root filesystem works.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MIGRATIONS_DIR=/app/migrations \
    HTTP_PORT=8080
WORKDIR /app
USER 10001
EXPOSE 8080
# Liveness only (ECS uses the task definition's own check; this one is for docker run and compose).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8080') + '/healthz', timeout=4)"]
# Exec form: sqs2pg runs as PID 1 with no shell in between, so SIGTERM from docker stop or ECS reaches it.
ENTRYPOINT ["sqs2pg"]
CMD ["run"]
