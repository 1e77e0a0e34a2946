# tracker: `tracker serve`, the HTTP API with the flusher in-process (docker-compose.yml and
# deploy/k8s/ run the API with --no-flusher and the flusher apart). Redis and PostgreSQL
# run elsewhere: set TRACKER_REDIS_URL and TRACKER_DATABASE_URL. The image holds no database
# servers (no `embedded` extra), so with both unset tracker exits 2 saying to set them.
#
# Two stages: the first builds tracker and its dependencies into a venv, the second copies
# only that venv onto a clean base, so nothing of the build (sources, pip's work files,
# a compiler if a dependency ever needs one) reaches the image.

# A patch release, not the moving `3.11-slim`: a rebuild gets the same Python. Bump it
# deliberately (and the second FROM with it).
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# What `pip install .` reads: the project file, its readme, the package.
COPY pyproject.toml README.md ./
COPY tracker ./tracker
# Plain `.`, no extras: the core dependencies only. pip compiles the .pyc files here, so
# the read-only root filesystem at run time needs none written.
RUN python -m venv /opt/tracker \
    && /opt/tracker/bin/pip install .


FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/tracker/bin:$PATH

# A fixed numeric uid and gid: Kubernetes' runAsNonRoot can verify them (deploy/k8s runs
# as 10001:10001), and a volume's owner is the same in every build (`--user-group` would
# take the next free system gid instead).
RUN groupadd --system --gid 10001 tracker \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tracker \
       --create-home --shell /usr/sbin/nologin tracker

# The same path as in the build stage: a venv's scripts name their interpreter absolutely.
COPY --from=build /opt/tracker /opt/tracker

USER 10001:10001
WORKDIR /var/lib/tracker

ENV TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8080 \
    TRACKER_LOG_FORMAT=json

EXPOSE 8080

# Liveness only: /readyz also needs Redis and PostgreSQL, which have health checks of their
# own. Python, not curl: neither curl nor wget is in the slim image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRACKER_PORT', '8080') + '/healthz', timeout=3)"]

# SIGTERM: finish requests, run a final flush, close (up to 4 x TRACKER_SHUTDOWN_TIMEOUT;
# compose's stop_grace_period and k8s' terminationGracePeriodSeconds allow for it).
STOPSIGNAL SIGTERM
CMD ["tracker", "serve"]
