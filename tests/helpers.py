"""Helpers shared by tests: clients, events, metric samples, user agents, processes."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tracker.core.settings import Settings
from tracker.flush.loop import FlushResult
from tracker.ops.metrics import Metrics
from tracker.web.app_keys import METRICS, SERVICES

Client = TestClient[web.Request, web.Application]
# make_client(settings, run_flusher=False, clock=...): the app under test, started.
MakeClient = Callable[..., Awaitable[Client]]

# A browser's User-Agent: aiohttp's own would be classified as a bot, and not counted.
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def view(article_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "view", "article_id": article_id, **extra}


def share(article_id: str, channel: str, **extra: Any) -> dict[str, Any]:
    return {"type": "share", "article_id": article_id, "channel": channel, **extra}


async def post_events(client: Client, *events: dict[str, Any]) -> int:
    """POST events (one object, or a batch when several); returns the HTTP status."""
    body: Any = events[0] if len(events) == 1 else {"events": list(events)}
    response = await client.post("/api/v1/events", json=body)
    return response.status


async def flush(client: Client) -> FlushResult:
    """One flush run, the reader sketches stored too (their interval aside)."""
    return await client.app[SERVICES].flusher.flush_once(sketches=True)


async def stats(client: Client, article_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/articles/{article_id}/stats")
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


def sample(source: Client | CollectorRegistry, name: str, **labels: str) -> float | None:
    """A sample of the app's own registry (or of `source`), exactly: None if the series
    does not exist."""
    registry = source if isinstance(source, CollectorRegistry) else source.app[METRICS].registry
    value: float | None = registry.get_sample_value(name, labels)
    return value


def process_env(settings: Settings) -> dict[str, str]:
    """The environment of a tracker process on `settings`: this process's own, without
    any TRACKER_* variable of it, plus the settings'."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TRACKER_")}
    env.update(settings.as_env())
    return env


def exposed(text: str) -> list[Sample]:
    """The samples of a /metrics scrape."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scraped(samples: list[Sample], name: str, **labels: str) -> float | None:
    """One sample of a scrape, exactly: None if the series is not exposed."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else None


class Clock:
    """A wall clock a test sets (tracker reads time through app[CLOCK])."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def morning_clock() -> Clock:
    """A clock at 10:00 UTC of a coming day: a test that moves it on by hours stays on
    one day, where a reader keeps its id (the id's salt changes at midnight)."""
    return Clock((int(time.time()) // 86_400 + 2) * 86_400 + 10 * 3_600)


def require_tool(name: str, package: str) -> str:
    """The path of a Debian package's command (.ci/run installs it): where it is missing a
    test fails in CI and is skipped elsewhere."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is not None:
        return found
    reason = f"{name} is missing: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def metric_label_names(metrics: Metrics) -> dict[str, set[str]]:
    """Each metric family's label names, read from its definition: families without a
    series yet count too. The request families are tallied apart (ops/request_tally.py)."""
    from prometheus_client.metrics import MetricWrapperBase

    labels = {
        next(iter(metric.describe())).name: set(metric._labelnames)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    if metrics.request_tally is not None:
        for family in metrics.request_tally.describe():
            labels[family.name] = set(family._labelnames)
    return labels
