"""What the app holds, one typed AppKey each: what create_app builds from the settings
(app.py), the services a serving process opens (one object, services.opening.Services,
set by the cleanup context in contexts.py), and the watch on the event loop. Read by
the handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.bots import BotClassifier
from tracker.ops.metrics import Metrics
from tracker.redis_side.keys import Keys
from tracker.redis_side.readers import TrustedProxies
from tracker.services.opening import Services
from tracker.web.overload import Deadlines, LoopLag
from tracker.web.snippet import Snippet

SETTINGS: Final = web.AppKey("settings", Settings)
METRICS: Final = web.AppKey("metrics", Metrics)
KEYS: Final = web.AppKey("keys", Keys)
# The wall clock, replaceable in tests that simulate several days.
CLOCK: Final = web.AppKey[Callable[[], float]]("clock")
OPENAPI: Final = web.AppKey("openapi", bytes)
RUNBOOK: Final = web.AppKey("runbook", bytes)
BOTS: Final = web.AppKey("bots", BotClassifier)
PROXIES: Final = web.AppKey("proxies", TrustedProxies)
SNIPPET: Final = web.AppKey("snippet", Snippet)
# Set once Redis and PostgreSQL are reachable (contexts.py).
SERVICES: Final = web.AppKey("services", Services)
LOOP_LAG: Final = web.AppKey("loop_lag", LoopLag)
DEADLINES: Final = web.AppKey("deadlines", Deadlines)
# The public most-read list's cache (most_read.MostRead; that module imports this one).
MOST_READ: Final = web.AppKey[Any]("most_read")
