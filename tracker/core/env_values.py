"""How each setting is read from its TRACKER_* variable: the parsers (each raises
ValueError with what it expected) and the bounds they check, and how a value is
written back as a variable."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MAX_REDIS_SHARDS: Final = 1024
# Plausible's own bound on an event name.
MAX_EVENT_NAME_LENGTH: Final = 120

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_value(value: object) -> str:
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


def _site_origins(raw: str) -> tuple[str, ...]:
    origins = _origins(raw)
    if "*" in origins:
        raise ValueError("name the site's origins: tracker reads pages only from those")
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


PARSERS: dict[str, Callable[[str], Any]] = {
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
    "site_origins": _site_origins,
    "trust_event_metadata": _bool,
    "metadata_refresh_s": _float_in(60.0),
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
    "read_through_min_readers": _int_in(1),
    "applied_batch_retention_days": _int_in(1),
    "plausible_share_events": _event_names,
    "article_id_from_url": _one_group_pattern,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "log_format": _choice(LOG_FORMATS, upper=False),
}
