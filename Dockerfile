# feedrelay in a container.
#
#   docker build -t feedrelay .
#   docker run -v feedrelay-data:/data -v $PWD/feeds.toml:/config/feeds.toml:ro -e SLACK_BOT_TOKEN feedrelay
#
# The SQLite database lives in the /data volume; the config is read from /config/feeds.toml (a copy of the
# example is baked in as a default). Any feedrelay command works: `docker run ... feedrelay status`.

ARG PYTHON_VERSION=3.11

# --- build: install the locked dependencies and feedrelay into /app/.venv -----------------------------
FROM python:${PYTHON_VERSION}-slim AS build

ARG UV_VERSION=0.13.9
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}"

# Compile bytecode now (the runtime user cannot write to the venv); copy files rather than hard-link from
# uv's cache; use the image's Python, never a downloaded one, so the venv works in the runtime stage.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
# --locked installs exactly what uv.lock pins and fails if the lock no longer matches pyproject.toml.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project

# Then feedrelay itself, as a regular (non-editable) install so the venv does not need the source tree.
COPY README.md ./
COPY feedrelay/ ./feedrelay/
RUN uv sync --locked --no-dev --no-editable

# --- runtime -------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim

RUN groupadd --system --gid 10001 feedrelay \
 && useradd --system --uid 10001 --gid feedrelay --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin feedrelay \
 && mkdir -p /data /config \
 && chown feedrelay:feedrelay /data

COPY --from=build /app/.venv /app/.venv
COPY feeds.toml /config/feeds.toml

# FEEDRELAY_REQUIRE_SLACK: a token that does not reach the container is an error, not a silent switch to
# printing messages to the log (see README, "Connecting Slack").
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    FEEDRELAY_CONFIG=/config/feeds.toml \
    FEEDRELAY_DB=/data/feedrelay.db \
    FEEDRELAY_REQUIRE_SLACK=1

USER feedrelay
WORKDIR /data
# Declared after the chown above, so a new named volume starts out owned by the feedrelay user.
VOLUME ["/data"]

# feedrelay handles SIGTERM (docker stop) itself: it gives the messages and polls in flight 5 s, and exits.
ENTRYPOINT ["feedrelay"]
CMD ["run"]
