# feedrelay in a container.
#
#   docker build -t feedrelay .
#   docker run -v feedrelay-data:/data -v $PWD/feeds.toml:/config/feeds.toml:ro -e SLACK_BOT_TOKEN feedrelay
#
# The SQLite database lives in the /data volume; the config is read from /config/feeds.toml (a copy of the
# example is baked in as a default). Any feedrelay command works: `docker run ... feedrelay status`.
# compose.yaml runs the same image with the volume, a config directory and the metrics port.
#
# Label the image with where it came from:
#   docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg SOURCE=https://github.com/you/feedrelay -t feedrelay .

# The base image, pinned by tag and by the digest of its multi-architecture index, so a rebuild gets the same
# Python and Debian until this line is changed on purpose. (Digest as published for this tag; to move to a
# newer patch release: docker buildx imagetools inspect python:3.11.N-slim-bookworm, and copy its digest.)
ARG PYTHON_TAG=3.11.14-slim-bookworm
ARG PYTHON_DIGEST=sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build: install the locked dependencies and feedrelay into /app/.venv -----------------------------
FROM python:${PYTHON_TAG}@${PYTHON_DIGEST} AS build

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
FROM python:${PYTHON_TAG}@${PYTHON_DIGEST}

ARG PYTHON_TAG
ARG PYTHON_DIGEST
ARG VERSION=0.1.0
ARG REVISION=
ARG SOURCE=
LABEL org.opencontainers.image.title="feedrelay" \
      org.opencontainers.image.description="Relays RSS/Atom/JSON feeds, NIST NVD CVEs and CISA KEV entries into Slack channels: filtered, deduplicated, never lost." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_TAG}" \
      org.opencontainers.image.base.digest="${PYTHON_DIGEST}"

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

# `feedrelay health` reads the heartbeat the daemon keeps beside its database: it needs neither the network
# (Slack being down is not the container's fault, and a restart would not fix it) nor [metrics].
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["feedrelay", "health"]

# feedrelay handles SIGTERM (docker stop) itself: it gives the messages and polls in flight 5 s, and exits.
ENTRYPOINT ["feedrelay"]
CMD ["run"]
