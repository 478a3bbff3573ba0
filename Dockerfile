# syntax=docker/dockerfile:1
#
# One image for every Pulse role. The role is the command:
#   docker run IMAGE migrate
#   docker run IMAGE run collector | run rollup | run dashboard
# docker-compose.yml wires the roles to Redpanda, ClickHouse, Redis and PostgreSQL.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv from PyPI, pinned to the version that wrote uv.lock.
RUN pip install "uv==0.13.8"

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. It stays an editable install on purpose: pulse.settings
# finds ui/ and migrations/ relative to backend/pulse/, i.e. under /app.
COPY . .
RUN uv sync --frozen --no-dev

# Code and venv stay root-owned and read-only for the service user. Its only
# writable place is its home, which is also the working directory, so the
# default PULSE_HOME (.pulse, relative) lands in /var/lib/pulse/.pulse.
RUN groupadd --system --gid 10001 pulse \
    && useradd --system --uid 10001 --gid pulse --home-dir /var/lib/pulse --create-home \
       --shell /usr/sbin/nologin pulse

ENV PATH="/app/.venv/bin:${PATH}" \
    PULSE_BIND_HOST=0.0.0.0

USER pulse
WORKDIR /var/lib/pulse

# collector, dashboard, rollup (health and metrics only)
EXPOSE 8000 8001 8002

ENTRYPOINT ["pulse"]
CMD ["run", "collector"]
