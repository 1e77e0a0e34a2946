"""Requests answered and their durations, tallied in plain numbers and exposed as
Prometheus families when scraped.

A Counter child's inc() and a Histogram child's observe() take a lock each and walk the
buckets in Python: about 5 µs of every request, the largest part of tracker's own work
on a read answered from memory. The event loop is the only writer and the exposition
runs on it too, so plain integers need no lock. Same names, labels and buckets as the
client's own metrics (one worker process; with several, prometheus-client's
multiprocess files are used instead: metrics.py).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REQUESTS_NAME: Final = "tracker_http_requests"
REQUESTS_HELP: Final = "HTTP requests answered, by route template, method and status."
DURATION_NAME: Final = "tracker_http_request_duration_seconds"
DURATION_HELP: Final = "Time to answer, by route template."
DURATION_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class _Durations:
    __slots__ = ("counts", "sum_s")

    def __init__(self, buckets: int) -> None:
        # counts[i]: observations in (bound i-1, bound i]; the last past every bound.
        self.counts = [0] * (buckets + 1)
        self.sum_s = 0.0


class RequestTally(Collector):
    """`observe` per request; `collect` when scraped (registered on the app's registry)."""

    def __init__(self, buckets_s: Sequence[float] = DURATION_BUCKETS_S) -> None:
        self.bounds_s = tuple(buckets_s)
        # As the client writes a bound ("le"), so the series match its own metrics'.
        labels = [floatToGoString(bound) for bound in self.bounds_s]  # type: ignore[no-untyped-call]
        self._bucket_labels = [*labels, "+Inf"]
        self._requests: dict[tuple[str, str, int], int] = {}
        self._durations: dict[str, _Durations] = {}
        # When each series first appeared (the `_created` sample the client writes).
        self._created: dict[tuple[str, str, int], float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        requests = self._requests
        count = requests.get(key)
        if count is None:
            self._created[key] = time.time()
            count = 0
        requests[key] = count + 1
        durations = self._durations.get(route)
        if durations is None:
            durations = self._durations[route] = _Durations(len(self.bounds_s))
        # A bucket holds what is at most its bound ("le"): the first bound not below.
        durations.counts[bisect_left(self.bounds_s, seconds)] += 1
        durations.sum_s += seconds

    def describe(self) -> Iterator[Metric]:
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        requests, durations = _families()
        for (route, method, status), count in self._requests.items():
            created = self._created[(route, method, status)]
            requests.add_metric((route, method, str(status)), count, created=created)
        yield requests
        for route, observed in self._durations.items():
            cumulative = 0
            buckets = []
            for label, count in zip(self._bucket_labels, observed.counts, strict=True):
                cumulative += count
                buckets.append((label, float(cumulative)))
            durations.add_metric((route,), buckets, observed.sum_s)
        yield durations


def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
    return (
        CounterMetricFamily(REQUESTS_NAME, REQUESTS_HELP, labels=("route", "method", "status")),
        HistogramMetricFamily(DURATION_NAME, DURATION_HELP, labels=("route",)),
    )
