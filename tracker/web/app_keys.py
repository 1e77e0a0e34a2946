"""What the app holds: a typed AppKey per service, set by app.py and the cleanup contexts
of contexts.py (which open and close them), read by the handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.bots import BotClassifier
from tracker.flush.flusher import Flusher
from tracker.ops.metrics import Metrics
from tracker.pg import db
from tracker.pg.auth import Tokens
from tracker.pg.metadata_store import MetadataStore
from tracker.redis_side.attempts import FailedAttempts
from tracker.redis_side.batcher import Batcher
from tracker.redis_side.batches import RedisBatches
from tracker.redis_side.client import RedisClient, RedisNodes
from tracker.redis_side.keys import Keys
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.readers import SaltStore, TrustedProxies
from tracker.redis_side.trending import Trending
from tracker.reports.popular import Reports
from tracker.reports.statscache import StatsCache
from tracker.reports.timeseries import Timeseries
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
