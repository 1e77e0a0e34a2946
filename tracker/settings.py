"""Settings: one typed dataclass, built once from the TRACKER_* environment."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

ENV_PREFIX = "TRACKER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MAX_REDIS_SHARDS: Final = 1024
# Plausible's own bound on an event name.
MAX_EVENT_NAME_LENGTH: Final = 120

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """An environment variable holds a value tracker cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Connections. Both unset: tracker starts embedded Redis and PostgreSQL under data_dir.
    redis_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path("tracker-data")

    host: str = "127.0.0.1"
    port: int = 8080

    flush_interval_s: float = 5.0
    # Flush sooner than the interval once this many events wait in Redis.
    flush_max_pending_events: int = 50_000
    flush_max_backoff_s: float = 60.0
    flush_lease_s: float = 30.0
    # A batch is applied in this many Postgres transactions at once (split by article).
    flush_parallelism: int = 2

    # A batch holds at most this many hash fields: a backlog is cut into batches that
    # each take bounded time to read and apply.
    flush_max_batch_fields: int = 50_000
    # PostgreSQL connections of the flusher, apart from those of the reads.
    flush_pool_size: int = 3

    dedup_window_s: int = 1800
    # Readers counted per address and article within the dedup window (0: no bound).
    max_readers_per_address: int = 10
    # Requests per minute per client address (0: no limit).
    rate_limit: float = 600.0
    allowed_origins: tuple[str, ...] = ()
    # Refuse a POST without an Origin header (browsers always send one) unless it comes
    # from a trusted proxy: server-side senders then go through one.
    require_origin: bool = False
    trusted_proxies: tuple[IPNetwork, ...] = ()
    respect_dnt: bool = False
    demo: bool = False

    redis_shards: int = 1
    redis_prefix: str = "trk"
    redis_timeout_s: float = 2.0
    # TRACKER_REDIS_URL names nodes of a Redis Cluster (several, comma-separated, as seeds).
    redis_cluster: bool = False
    # Acknowledge events only once this many replicas have them (WAIT): a failover then
    # loses no acknowledged event. 0: once the primary has them.
    redis_wait_replicas: int = 0
    # The shards this process flushes (e.g. `0-3,6`); empty: all. Each shard has a lease
    # of its own, so flushers on several hosts share the shards.
    flush_shards: tuple[int, ...] = ()
    # Start even though Redis may evict keys (maxmemory-policy other than noeviction).
    allow_eviction: bool = False
    database_timeout_s: float = 10.0
    database_pool_size: int = 10
    # A replica of TRACKER_DATABASE_URL for stats and reports; the flusher keeps a batch
    # in Redis until the replica has replayed it, so reads never miss it.
    read_database_url: str | None = None
    # PostgreSQL's parallel workers per query for tracker's reads (0: none). On a small
    # server, starting workers costs a report more than they save, and takes cores from
    # the flusher; a large one with idle cores may give reports a few.
    database_parallel_workers: int = 0

    max_body_bytes: int = 256 * 1024
    max_batch_events: int = 100
    # Time a client has to send a request's headers and body; idle keep-alive after.
    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    # Deadline of a whole request; past it, 503.
    request_timeout_s: float = 5.0
    # When the event loop lags more than this, new requests get a fast 503.
    max_loop_lag_s: float = 0.5
    stats_max_age_s: int = 5
    # Per-process cache of per-article stats, seconds (0: off); within stats_max_age_s.
    stats_cache_s: float = 1.0
    stats_cache_bytes: int = 32 << 20
    # Per-process cache of User-Agent classifications.
    ua_cache_bytes: int = 4 << 20
    retry_after_s: int = 2
    shutdown_timeout_s: float = 10.0

    # Hourly buckets are dropped a month at a time once older than this (0: kept);
    # daily roll-ups and totals are kept.
    hourly_retention_days: int = 90
    applied_batch_retention_days: int = 30

    # Plausible's Events API (POST /api/event): the custom event names that count as a
    # share (in any case), and the regular expression whose one group, searched in a page
    # URL's path, is the article id of an event without an `article_id` prop. The default
    # is the path without slashes at its ends (possessive `/*+`: linear on `////...`).
    plausible_share_events: tuple[str, ...] = ("Share",)
    article_id_from_url: str = "^/*+(.*[^/])"

    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def embedded(self) -> bool:
        return self.redis_url is None and self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper().removesuffix("_S")
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            parse = _PARSERS[f.name]
            try:
                values[f.name] = parse(raw.strip())
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def as_env(self) -> dict[str, str]:
        """The TRACKER_* variables that give these settings (those not at their default):
        from_env(as_env()) gives them back. For starting a tracker process."""
        defaults = Settings()
        return {
            ENV_NAMES[f.name]: _env_value(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }

    def with_overrides(self, **changes: Any) -> Settings:
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if (self.redis_url is None) != (self.database_url is None):
            missing = "TRACKER_REDIS_URL" if self.redis_url is None else "TRACKER_DATABASE_URL"
            raise SettingsError(
                f"{missing} is unset while the other URL is set: set both, or neither "
                "for the embedded Redis and PostgreSQL"
            )
        if self.redis_url is not None:
            urls = self.redis_url.split(",") if self.redis_cluster else [self.redis_url]
            schemes = ("redis://", "rediss://", "unix://")
            if not all(url.strip().startswith(schemes) and "," not in url for url in urls):
                many = ", several comma-separated with TRACKER_REDIS_CLUSTER=1"
                raise SettingsError(
                    f"TRACKER_REDIS_URL={self.redis_url!r}: expected redis://...{many}"
                )
        for name, url in (
            ("TRACKER_DATABASE_URL", self.database_url),
            ("TRACKER_READ_DATABASE_URL", self.read_database_url),
        ):
            if url is not None and not url.startswith(("postgres://", "postgresql://")):
                raise SettingsError(f"{name}={url!r}: expected postgresql://...")
        if self.read_database_url is not None and self.database_url is None:
            raise SettingsError("TRACKER_READ_DATABASE_URL needs TRACKER_DATABASE_URL")
        if self.redis_cluster and self.redis_url is None:
            raise SettingsError("TRACKER_REDIS_CLUSTER=1 needs TRACKER_REDIS_URL (cluster nodes)")
        beyond = [shard for shard in self.flush_shards if shard >= self.redis_shards]
        if beyond:
            raise SettingsError(
                f"TRACKER_FLUSH_SHARDS names shard {beyond[0]}, but TRACKER_REDIS_SHARDS="
                f"{self.redis_shards} (shards 0 to {self.redis_shards - 1})"
            )


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"expected a whole number {bound}")
        return value

    return parse


def _float_in(low: float, *, exclusive: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number of seconds") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if value < low or (exclusive and value == low):
            raise ValueError(f"expected a number {'above' if exclusive else 'at least'} {low}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _choice(options: tuple[str, ...], *, upper: bool) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)} (any case)")
        return value

    return parse


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"origin {origin!r} must be '*' or start with http:// or https://")
    return origins


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or CIDR network") from None
    return tuple(networks)


def _prefix(raw: str) -> str:
    if not all(ch.isalnum() or ch in "_-." for ch in raw):
        raise ValueError("expected letters, digits, '_', '-' or '.'")
    return raw


def _str(raw: str) -> str:
    return raw


def parse_shards(raw: str) -> tuple[int, ...]:
    """`0-3,6`: shard numbers and ranges of them."""
    shards: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"{part!r}: expected a shard number or a range like 0-3") from None
        if low < 0 or high < low or high >= MAX_REDIS_SHARDS:
            raise ValueError(
                f"{part!r}: expected shards from 0 to {MAX_REDIS_SHARDS - 1}, low-high"
            )
        shards.update(range(low, high + 1))
    return tuple(sorted(shards))


def _event_names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ValueError("expected a comma list of event names")
    for name in names:
        if len(name) > MAX_EVENT_NAME_LENGTH:
            raise ValueError(f"event names are at most {MAX_EVENT_NAME_LENGTH} characters")
    return names


def _one_group_pattern(raw: str) -> str:
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if pattern.groups != 1:
        raise ValueError(f"expected exactly one capture group, found {pattern.groups}")
    return raw


_PER: Final = {"s": 60, "sec": 60, "min": 1, "m": 1, "h": 1 / 60, "hour": 1 / 60}


def _rate(raw: str) -> float:
    """Requests per minute: `600`, `600/min`, `10/s` or `36000/h`; 0 turns the limit off."""
    count, _, per = raw.partition("/")
    factor = _PER.get(per.strip().lower() or "min")
    try:
        value = float(count) * factor if factor is not None else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("expected requests per minute, e.g. 600, 600/min, 10/s or 36000/h")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_url": _str,
    "database_url": _str,
    "data_dir": Path,
    "host": _str,
    "port": _int_in(0, 65535),
    "flush_interval_s": _float_in(0.0, exclusive=True),
    "flush_max_pending_events": _int_in(1),
    "flush_max_backoff_s": _float_in(0.0, exclusive=True),
    "flush_lease_s": _float_in(1.0),
    "flush_parallelism": _int_in(1, 32),
    "flush_max_batch_fields": _int_in(1_000),
    "flush_pool_size": _int_in(1, 100),
    "dedup_window_s": _int_in(0),
    "max_readers_per_address": _int_in(0),
    "rate_limit": _rate,
    "require_origin": _bool,
    "allow_eviction": _bool,
    "read_timeout_s": _float_in(0.0, exclusive=True),
    "keepalive_timeout_s": _float_in(0.0, exclusive=True),
    "request_timeout_s": _float_in(0.0, exclusive=True),
    "max_loop_lag_s": _float_in(0.0, exclusive=True),
    "stats_cache_bytes": _int_in(1 << 20),
    "ua_cache_bytes": _int_in(64 << 10),
    "allowed_origins": _origins,
    "trusted_proxies": _networks,
    "respect_dnt": _bool,
    "demo": _bool,
    "redis_shards": _int_in(1, MAX_REDIS_SHARDS),
    "redis_cluster": _bool,
    "redis_wait_replicas": _int_in(0, 16),
    "flush_shards": parse_shards,
    "read_database_url": _str,
    "redis_prefix": _prefix,
    "redis_timeout_s": _float_in(0.0, exclusive=True),
    "database_timeout_s": _float_in(0.0, exclusive=True),
    "database_pool_size": _int_in(1, 1000),
    "database_parallel_workers": _int_in(0, 64),
    "max_body_bytes": _int_in(1024),
    # SPEC: at most 100 events in one request.
    "max_batch_events": _int_in(1, 100),
    "stats_max_age_s": _int_in(0),
    "stats_cache_s": _float_in(0.0),
    "retry_after_s": _int_in(1),
    "shutdown_timeout_s": _float_in(0.0),
    "hourly_retention_days": _int_in(0),
    "applied_batch_retention_days": _int_in(1),
    "plausible_share_events": _event_names,
    "article_id_from_url": _one_group_pattern,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "log_format": _choice(LOG_FORMATS, upper=False),
}

ENV_NAMES: dict[str, str] = {
    f.name: ENV_PREFIX + f.name.upper().removesuffix("_S") for f in fields(Settings)
}
