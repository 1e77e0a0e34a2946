# tracker: the HTTP API with the flusher in-process. Redis and PostgreSQL run elsewhere
# (see docker-compose.yml); with TRACKER_REDIS_URL and TRACKER_DATABASE_URL both unset it
# starts embedded ones under TRACKER_DATA_DIR instead (fine for a trial, not for production).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tracker ./tracker
RUN pip install . \
    && rm -rf /src \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/tracker \
       --create-home --shell /usr/sbin/nologin tracker

USER tracker
WORKDIR /var/lib/tracker

ENV TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8080 \
    TRACKER_DATA_DIR=/var/lib/tracker/data \
    TRACKER_LOG_FORMAT=json

EXPOSE 8080

# Liveness only: /readyz also needs Redis and PostgreSQL, which have health checks of their own.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRACKER_PORT', '8080') + '/healthz', timeout=3)"]

# SIGTERM: finish requests, run a final flush, close (up to 4 x TRACKER_SHUTDOWN_TIMEOUT).
STOPSIGNAL SIGTERM
CMD ["tracker", "serve"]
