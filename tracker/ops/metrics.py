"""Prometheus metrics, on a registry of the app's own. Labels are bounded sets, never ids."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tracker import __version__
from tracker.core.errors import Ignored, Rejected
from tracker.core.metadata import PageOutcome
from tracker.events.counts import PendingStats
from tracker.events.models import CHANNELS, Event
from tracker.ops.request_tally import (
    DURATION_BUCKETS_S,
    DURATION_HELP,
    DURATION_NAME,
    REQUESTS_HELP,
    REQUESTS_NAME,
    RequestTally,
)

PIXEL_ERRORS = (Rejected.INVALID, Rejected.UNAVAILABLE)

EVENT_TYPES = ("view", "share", "engage")


class Metrics:
    """`multiprocess_dir`: one of several worker processes; the values live in
    prometheus-client's multiprocess files there, and the exposition sums all workers."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_accepted = Counter(
            "tracker_events_accepted", "Events stored in Redis, by type.", ["type"], registry=r
        )
        self.events_rejected = Counter(
            "tracker_events_rejected",
            "Events (or requests, where the body could not be read) refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.events_ignored = Counter(
            "tracker_events_ignored",
            "Events acknowledged but not counted: bots (crawler, empty agent, headless "
            "browser), a reader's repeat within the dedup window, Do-Not-Track.",
            ["reason"],
            registry=r,
        )
        self.pixel_errors = Counter(
            "tracker_pixel_errors",
            "/p.gif requests that could not be counted (the GIF is answered anyway).",
            ["reason"],
            registry=r,
        )
        self.shares_accepted = Counter(
            "tracker_shares_accepted",
            "Share events stored in Redis, by channel.",
            ["channel"],
            registry=r,
        )
        self.events_counted = Counter(
            "tracker_events_counted",
            "Events that added to counters in Redis (accepted, less repeats within the "
            "de-duplication window, an address's readers past its bound, retried ids).",
            registry=r,
        )
        self.redis_round_trips = Counter(
            "tracker_redis_round_trips",
            "Round trips to Redis that record events (one script call per shard, in one "
            "pipeline), by outcome.",
            ["outcome"],
            registry=r,
        )
        self.redis_round_trip_events = Histogram(
            "tracker_redis_round_trip_events",
            "Events recorded per round trip (requests that arrive together share one).",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.flush_runs = Counter("tracker_flush_runs", "Flush runs started.", registry=r)
        self.redis_shards = Gauge(
            "tracker_redis_shards",
            "Shards the counters are split into (TRACKER_REDIS_SHARDS): the sum of "
            "tracker_flush_lease_held over the flushers when every shard has one.",
            registry=r,
            multiprocess_mode="max",
        )
        self.flush_lease_held = Gauge(
            "tracker_flush_lease_held",
            "Shards whose flush lease this process's last flush run held (0: other "
            "flushers hold them all); absent where no flusher runs.",
            registry=r,
            multiprocess_mode="max",
        )
        self.flush_failures = Counter(
            "tracker_flush_failures",
            "Flush runs that failed, by the server that failed them.",
            ["reason"],
            registry=r,
        )
        self.flush_duration = Histogram(
            "tracker_flush_duration_seconds",
            "Time of a successful flush run.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.flush_batches = Counter(
            "tracker_flush_batches",
            "Batches moved to Postgres (applied) or found there already (already_applied).",
            ["outcome"],
            registry=r,
        )
        self.flush_events = Counter(
            "tracker_flush_events", "Events moved from Redis to Postgres.", registry=r
        )
        self.flush_counters = Counter(
            "tracker_flush_rows",
            "Hourly counter rows written to Postgres (one per article, metric and hour).",
            registry=r,
        )
        self.flush_sketches = Counter(
            "tracker_flush_sketches",
            "Reader sketches (one per article and day) stored in Postgres.",
            registry=r,
        )
        self.redis_rollbacks = Counter(
            "tracker_redis_rollbacks",
            "Times Redis was found older than PostgreSQL (a crash with AOF everysec, a "
            "failover to a lagging replica): batch ids were moved past what was applied.",
            registry=r,
        )
        self.metadata_fetches = Counter(
            "tracker_metadata_fetches",
            "Article pages read for their metadata, by outcome (verified: the page declares "
            "the article and its metadata was taken; dropped: not read, the queue was full).",
            ["outcome"],
            registry=r,
        )
        self.last_flush_success = Gauge(
            "tracker_last_flush_success_timestamp_seconds",
            "When a flush run last succeeded (Unix time).",
            registry=r,
            multiprocess_mode="max",
        )
        self.pending_events = Gauge(
            "tracker_pending_events",
            "Events in Redis not yet in Postgres.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.pending_counters = Gauge(
            "tracker_pending_counters",
            "Hourly counters in Redis not yet in Postgres.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.oldest_unflushed_age = Gauge(
            "tracker_oldest_unflushed_event_age_seconds",
            "Age of the oldest event in Redis not yet in Postgres (0 when none).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.event_loop_lag = Gauge(
            "tracker_event_loop_lag_seconds",
            "How late the event loop ran, worst of the last second; past "
            "TRACKER_MAX_LOOP_LAG new requests are shed (503).",
            registry=r,
            multiprocess_mode="max",
        )
        self.dependency_up = Gauge(
            "tracker_dependency_up",
            "Whether Redis / Postgres answered the last check (1) or not (0).",
            ["dependency"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # One process tallies requests in plain numbers (request_tally.py); workers write
        # prometheus-client's multiprocess files, which only its own metrics can.
        self.request_tally: RequestTally | None = None
        self.observe_request: Callable[[str, str, int, float], None]
        if multiprocess_dir is None:
            self.request_tally = RequestTally()
            r.register(self.request_tally)
            self.observe_request = self.request_tally.observe
        else:
            self.http_requests = Counter(
                REQUESTS_NAME, REQUESTS_HELP, ["route", "method", "status"], registry=r
            )
            self.http_duration = Histogram(
                DURATION_NAME,
                DURATION_HELP,
                ["route"],
                buckets=DURATION_BUCKETS_S,
                registry=r,
            )
            self.observe_request = self._observe_in_files
        self.build_info = Gauge(
            "tracker_build_info",
            "Always 1; the labels say which tracker and Python run.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._request_counters: dict[tuple[str, str, int], Any] = {}
        self._request_durations: dict[str, Any] = {}
        # Children resolved once: labels() costs a dict lookup and a lock per call.
        self._accepted_views = self.events_accepted.labels("view")
        self._accepted_shares = self.events_accepted.labels("share")
        self._accepted_engages = self.events_accepted.labels("engage")
        self._shares_by_channel = {c: self.shares_accepted.labels(c) for c in CHANNELS}
        # Zero-valued series from the start, so rate() and alerts see them before the first event.
        for event_type in EVENT_TYPES:
            self.events_accepted.labels(event_type)
        for rejected in Rejected:
            self.events_rejected.labels(rejected)
        for ignored in Ignored:
            self.events_ignored.labels(ignored)
        for pixel_error in PIXEL_ERRORS:
            self.pixel_errors.labels(pixel_error)
        for failure in ("redis", "postgres", "error"):
            self.flush_failures.labels(failure)
        for outcome in ("applied", "already_applied"):
            self.flush_batches.labels(outcome)
        for outcome in ("ok", "error"):
            self.redis_round_trips.labels(outcome)
        for outcome in PageOutcome:
            self.metadata_fetches.labels(outcome)

    def _observe_in_files(self, route: str, method: str, status: int, seconds: float) -> None:
        # Children cached per label set: labels() takes a lock and builds a tuple each call.
        key = (route, method, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.http_requests.labels(
                route, method, str(status)
            )
        counter.inc()
        histogram = self._request_durations.get(route)
        if histogram is None:
            histogram = self._request_durations[route] = self.http_duration.labels(route)
        histogram.observe(seconds)

    def count_accepted(self, events: Sequence[Event]) -> None:
        views = sum(1 for event in events if event.type == "view")
        if views:
            self._accepted_views.inc(views)
        if len(events) > views:
            engages = 0
            for event in events:
                if event.type == "engage":
                    engages += 1
                elif event.channel is not None:
                    self._shares_by_channel[event.channel].inc()
            if engages:
                self._accepted_engages.inc(engages)
            if len(events) > views + engages:
                self._accepted_shares.inc(len(events) - views - engages)

    def set_pending(self, pending: PendingStats, now_ms: int) -> None:
        self.pending_events.set(pending.events)
        self.pending_counters.set(pending.counters)
        age_s = (
            0.0
            if pending.oldest_event_ms is None
            else max(0, now_ms - pending.oldest_event_ms) / 1000
        )
        self.oldest_unflushed_age.set(age_s)

    def exposition(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
