"""What the app holds: a typed AppKey per service, set by app.py and the cleanup contexts
of contexts.py (which open and close them), read by the handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from . import db
from .attempts import FailedAttempts
from .auth import Tokens
from .batcher import Batcher
from .batches import RedisBatches
from .bots import BotClassifier
from .flusher import Flusher
from .keys import Keys
from .metadata_store import MetadataStore
from .metrics import Metrics
from .overload import Deadlines, LoopLag
from .preflight import Preflight
from .readers import SaltStore, TrustedProxies
from .redis_client import RedisClient, RedisNodes
from .reports import Reports
from .settings import Settings
from .snippet import Snippet
from .statscache import StatsCache
from .timeseries import Timeseries
from .trending import Trending

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
# Set by the cleanup contexts (contexts.py) once Redis and PostgreSQL are reachable.
URLS: Final = web.AppKey("urls", tuple[str, str])  # (redis_url, database_url)
REDIS: Final[web.AppKey[RedisClient]] = web.AppKey("redis")
NODES: Final = web.AppKey("redis_nodes", RedisNodes)
# The primary's pool, or a replica's (TRACKER_READ_DATABASE_URL), for stats and reports.
READ_POOL: Final = web.AppKey("read_pool", db.Pool)
SALTS: Final = web.AppKey("salts", SaltStore)
BATCHER: Final = web.AppKey("batcher", Batcher)
BATCHES: Final = web.AppKey("batches", RedisBatches)
POOL: Final = web.AppKey("pool", db.Pool)
LOOP_LAG: Final = web.AppKey("loop_lag", LoopLag)
DEADLINES: Final = web.AppKey("deadlines", Deadlines)
PREFLIGHT: Final = web.AppKey("preflight", Preflight)
STATS_CACHE: Final = web.AppKey("stats_cache", StatsCache)
REPORTS: Final = web.AppKey("reports", Reports)
TIMESERIES: Final = web.AppKey("timeseries", Timeseries)
TRENDING: Final = web.AppKey("trending", Trending)
TOKENS: Final = web.AppKey("tokens", Tokens)
FAILED_ATTEMPTS: Final = web.AppKey("failed_attempts", FailedAttempts)
FLUSHER: Final = web.AppKey("flusher", Flusher)
ARTICLE_METADATA: Final = web.AppKey("article_metadata", MetadataStore)
# The public most-read list's cache (most_read.MostRead; that module imports this one).
MOST_READ: Final = web.AppKey[Any]("most_read")
