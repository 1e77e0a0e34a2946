"""Settings: declared once, each with its type, bounds and (where its type does not say
enough) its parser, built once from the TRACKER_* environment.

A frozen msgspec Struct: its Annotated types carry the bounds (msgspec Meta) that both
reading the environment and `with_overrides` check, and the few parsers no type
expresses (FromEnv). Chosen over pydantic-settings because msgspec is already the
project's validator and the environment's names are tracker's contract, not a library's
convention: TRACKER_ + the field's name without its `_s` unit, or the name FromEnv says."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from tracker.core.env_values import (
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_REDIS_SHARDS,
    FromEnv,
    IPNetwork,
    choice,
    env_value,
    parse_event_names,
    parse_networks,
    parse_one_group_pattern,
    parse_origins,
    parse_prefix,
    parse_rate,
    parse_shards,
    parse_site_origins,
    parse_typed,
    within,
)
from tracker.core.metadata import origin_of

ENV_PREFIX = "TRACKER_"

Positive = Annotated[float, Meta(gt=0)]
NotNegative = Annotated[float, Meta(ge=0)]
Count = Annotated[int, Meta(ge=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]
Origins = Annotated[tuple[str, ...], FromEnv(parse_origins)]


class SettingsError(ValueError):
    """An environment variable holds a value tracker cannot use; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Connections. Both unset: tracker starts embedded Redis and PostgreSQL under data_dir.
    redis_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path("tracker-data")

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080

    flush_interval_s: Positive = 5.0
    # Reader sketches are stored apart from the counters, at most this often (reads see
    # the newer readers in Redis meanwhile).
    sketch_store_interval_s: Positive = 15.0
    # Flush sooner than the interval once this many events wait in Redis.
    flush_max_pending_events: AtLeastOne = 50_000
    flush_max_backoff_s: Positive = 60.0
    flush_lease_s: Annotated[float, Meta(ge=1)] = 30.0
    # A batch is applied in this many Postgres transactions at once (split by article).
    flush_parallelism: Annotated[int, Meta(ge=1, le=32)] = 2

    # A batch holds at most this many hash fields: a backlog is cut into batches that
    # each take bounded time to read and apply.
    flush_max_batch_fields: Annotated[int, Meta(ge=1_000)] = 50_000
    # PostgreSQL connections of the flusher, apart from those of the reads.
    flush_pool_size: Annotated[int, Meta(ge=1, le=100)] = 3

    dedup_window_s: Count = 1800
    # Readers counted per address and article within the dedup window (0: no bound).
    max_readers_per_address: Count = 10
    # Requests per minute per client address (0: no limit); `10/s` and `36000/h` too.
    rate_limit_per_min: Annotated[
        float, Meta(ge=0), FromEnv(parse_rate, name="TRACKER_RATE_LIMIT")
    ] = 600.0
    allowed_origins: Origins = ()
    # Refuse a POST without an Origin header (browsers always send one) unless it comes
    # from a trusted proxy: server-side senders then go through one.
    require_origin: bool = False
    trusted_proxies: Annotated[tuple[IPNetwork, ...], FromEnv(parse_networks)] = ()
    respect_dnt: bool = False
    demo: bool = False
    # The news site's own origins: tracker reads an article's metadata from its page there
    # (only a page that declares the same article id). Empty: those of allowed_origins.
    site_origins: Annotated[tuple[str, ...], FromEnv(parse_site_origins)] = ()
    # Take events' metadata as the article's (only for server-side senders on a private
    # network): otherwise it is at most a first, unverified claim.
    trust_event_metadata: bool = False
    # A verified page is read again after this long while its article is still read.
    metadata_refresh_s: Annotated[float, Meta(ge=60)] = 6 * 3600.0

    redis_shards: Annotated[int, Meta(ge=1, le=MAX_REDIS_SHARDS)] = 1
    redis_prefix: Annotated[str, FromEnv(parse_prefix)] = "trk"
    redis_timeout_s: Positive = 2.0
    # TRACKER_REDIS_URL names nodes of a Redis Cluster (several, comma-separated, as seeds).
    redis_cluster: bool = False
    # Acknowledge events only once this many replicas have them (WAIT): a failover then
    # loses no acknowledged event. 0: once the primary has them.
    redis_wait_replicas: Annotated[int, Meta(ge=0, le=16)] = 0
    # The shards this process flushes (e.g. `0-3,6`); empty: all. Each shard has a lease
    # of its own, so flushers on several hosts share the shards.
    flush_shards: Annotated[tuple[int, ...], FromEnv(parse_shards)] = ()
    # Start even though Redis may evict keys (maxmemory-policy other than noeviction).
    allow_eviction: bool = False
    database_timeout_s: Positive = 10.0
    database_pool_size: Annotated[int, Meta(ge=1, le=1000)] = 10
    # A replica of TRACKER_DATABASE_URL for stats and reports; the flusher keeps a batch
    # in Redis until the replica has replayed it, so reads never miss it.
    read_database_url: str | None = None
    # PostgreSQL's parallel workers per query for tracker's reads (0: none). On a small
    # server, starting workers costs a report more than they save, and takes cores from
    # the flusher; a large one with idle cores may give reports a few.
    database_parallel_workers: Annotated[int, Meta(ge=0, le=64)] = 0

    max_body_bytes: Annotated[int, Meta(ge=1024)] = 256 * 1024
    # SPEC: at most 100 events in one request.
    max_batch_events: Annotated[int, Meta(ge=1, le=100)] = 100
    # Time a client has to send a request's headers and body; idle keep-alive after.
    read_timeout_s: Positive = 10.0
    keepalive_timeout_s: Positive = 75.0
    # Deadline of a whole request; past it, 503.
    request_timeout_s: Positive = 5.0
    # When the event loop lags more than this, new requests get a fast 503.
    max_loop_lag_s: Positive = 0.5
    stats_max_age_s: Count = 5
    # Per-process stats cache: refreshed in the background after this many seconds
    # (0: off), answered stale meanwhile up to stats_max_age_s.
    stats_cache_s: NotNegative = 1.0
    stats_cache_bytes: Annotated[int, Meta(ge=1 << 20)] = 32 << 20
    # Per-process cache of User-Agent classifications.
    ua_cache_bytes: Annotated[int, Meta(ge=64 << 10)] = 4 << 20
    retry_after_s: AtLeastOne = 2
    shutdown_timeout_s: NotNegative = 10.0

    # Hourly buckets are dropped a month at a time once older than this (0: kept);
    # daily roll-ups and totals are kept.
    hourly_retention_days: Count = 90
    applied_batch_retention_days: AtLeastOne = 30
    # Ranking by read-through leaves out articles with fewer engaged readers than this
    # (two readers out of two would top a list of stories thousands read through).
    read_through_min_readers: AtLeastOne = 20

    # Plausible's Events API (POST /api/event): the custom event names that count as a
    # share (in any case), and the regular expression whose one group, searched in a page
    # URL's path, is the article id of an event without an `article_id` prop. The default
    # is the path without slashes at its ends (possessive `/*+`: linear on `////...`).
    plausible_share_events: Annotated[tuple[str, ...], FromEnv(parse_event_names)] = ("Share",)
    article_id_from_url: Annotated[str, FromEnv(parse_one_group_pattern)] = "^/*+(.*[^/])"

    log_level: Annotated[str, FromEnv(choice(LOG_LEVELS, upper=True))] = "INFO"
    log_format: Annotated[str, FromEnv(choice(LOG_FORMATS, upper=False))] = "text"

    @property
    def embedded(self) -> bool:
        return self.redis_url is None and self.database_url is None

    @property
    def page_origins(self) -> tuple[str, ...]:
        """Where tracker may read article pages: TRACKER_SITE_ORIGINS, else the allowed
        origins (never `*`: tracker fetches only from origins named to it)."""
        origins = self.site_origins or self.allowed_origins
        return tuple(origin_of(origin) for origin in origins if origin_of(origin))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in FIELDS:
            raw = env.get(field.env_name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[field.name] = field.parse(raw.strip())
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{field.env_name}={raw!r}: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def as_env(self) -> dict[str, str]:
        """The TRACKER_* variables that give these settings (those not at their default):
        from_env(as_env()) gives them back. For starting a tracker process."""
        defaults = Settings()
        return {
            field.env_name: env_value(getattr(self, field.name))
            for field in FIELDS
            if getattr(self, field.name) != getattr(defaults, field.name)
        }

    def with_overrides(self, **changes: Any) -> Settings:
        settings = msgspec.structs.replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        for field in FIELDS:  # the bounds, also of values not read from the environment
            value = getattr(self, field.name)
            try:
                within(value, field.info)
            except ValueError as exc:
                raise SettingsError(f"{field.env_name}={value!r}: {exc}") from None
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


class Field(msgspec.Struct, frozen=True):
    """One setting as declared: its variable, its type as msgspec sees it (bounds
    included), and how its variable is read."""

    name: str
    env_name: str
    info: msgspec.inspect.Type
    from_env: FromEnv | None

    def parse(self, raw: str) -> Any:
        if self.from_env is not None and self.from_env.parse is not None:
            return within(self.from_env.parse(raw), self.info)
        return parse_typed(raw, self.info)


def _type_info(hint: Any) -> msgspec.inspect.Type:
    try:
        return msgspec.inspect.type_info(hint)
    except TypeError:  # a type msgspec does not handle (IP networks): no bounds to check
        return msgspec.inspect.AnyType()


def _fields() -> tuple[Field, ...]:
    hints = typing.get_type_hints(Settings, include_extras=True)
    declared = []
    for field in msgspec.structs.fields(Settings):
        hint = hints[field.name]
        extras = getattr(hint, "__metadata__", ())
        from_env = next((extra for extra in extras if isinstance(extra, FromEnv)), None)
        name = ENV_PREFIX + field.name.upper().removesuffix("_S")
        if from_env is not None and from_env.name is not None:
            name = from_env.name
        declared.append(Field(field.name, name, _type_info(hint), from_env))
    return tuple(declared)


FIELDS: Final = _fields()
ENV_NAMES: Final = {field.name: field.env_name for field in FIELDS}

# TRACKER_* names that are not settings of tracker but are read by its tests.
OTHER_NAMES: Final = frozenset({"TRACKER_TEST_DATABASE_URL", "TRACKER_TEST_REDIS_URL"})


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """A sentence per TRACKER_* variable that tracker does not read, naming the setting it
    is closest to: a typo (TRACKER_TRUSTED_PROXY) would otherwise go unnoticed."""
    # Compared without the prefix they all share, which would make any two names close.
    known = sorted(name.removeprefix(ENV_PREFIX) for name in ENV_NAMES.values())
    messages = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in ENV_NAMES.values() or name in OTHER_NAMES:
            continue
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.7)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        messages.append(f"{name} is not a tracker setting and is ignored{hint}")
    return messages
