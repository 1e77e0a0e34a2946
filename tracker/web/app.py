"""create_app(settings): the web app, its resources opened and closed by cleanup contexts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.bots import BotClassifier
from tracker.ops.metrics import Metrics
from tracker.redis_side.keys import Keys
from tracker.redis_side.readers import TrustedProxies
from tracker.web.app_keys import (
    BOTS,
    CLOCK,
    KEYS,
    METRICS,
    OPENAPI,
    PROXIES,
    RUNBOOK,
    SETTINGS,
    SNIPPET,
)
from tracker.web.contexts import loop_lag_ctx, services_ctx
from tracker.web.middleware import tracker_middleware
from tracker.web.openapi import openapi_bytes
from tracker.web.runbook import runbook_page
from tracker.web.snippet import Snippet
from tracker.web.views import add_routes


def create_app(
    settings: Settings,
    *,
    run_flusher: bool = True,
    clock: Callable[[], float] = time.time,
    metrics_dir: Path | None = None,
) -> web.Application:
    """The app; `metrics_dir` when it is one of several worker processes (see workers.py)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # CORS outside the errors (within it): error answers (400, 503 + Retry-After)
        # carry its headers too, or a page of an allowed origin could not read them.
        middlewares=[tracker_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics(multiprocess_dir=metrics_dir)
    app[KEYS] = Keys.of(settings)
    app[OPENAPI] = openapi_bytes()
    app[RUNBOOK] = runbook_page()
    app[METRICS].redis_shards.set(settings.redis_shards)
    app[BOTS] = BotClassifier(settings.ua_cache_bytes)
    app[PROXIES] = TrustedProxies(settings.trusted_proxies)
    app[SNIPPET] = Snippet.build(settings)
    app[CLOCK] = clock
    # Started in this order, cleaned up in reverse: the final flush runs before the
    # connections close, and the embedded servers stop last.
    # The loop's watch first; then the services, closed in reverse (the final flush
    # runs before the connections close, the embedded servers stop last).
    app.cleanup_ctx.extend([loop_lag_ctx, services_ctx(run_flusher)])
    add_routes(app)
    return app
