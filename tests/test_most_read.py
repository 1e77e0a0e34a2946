"""The public most-read list's cache: one refresh at a time, the stale list served while
it runs (and while PostgreSQL cannot answer), errors passed to those who had to wait.

The report behind it is a stand-in here (what it counts is tested with real servers in
test_report_endpoints.py); what is under test is who waits for what."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tracker.core.errors import DatabaseUnavailable
from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.redis_side.readers import TrustedProxies
from tracker.reports.rows import PopularQuery, Report, Row
from tracker.services.opening import Services
from tracker.web.app_keys import CLOCK, DEADLINES, LOOP_LAG, METRICS, PROXIES, SERVICES, SETTINGS
from tracker.web.middleware import tracker_middleware
from tracker.web.most_read import FRESH_S, STALE_S, MostRead, PopularRoute
from tracker.web.overload import Deadlines, LoopLag

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class SlowReports:
    """Answers one row whose views count the questions asked; held until `gate` opens."""

    def __init__(self) -> None:
        self.asked = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def popular(self, query: PopularQuery) -> Report:
        self.asked += 1
        asked = self.asked
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        row = Row(
            rank=1, article_id="a/1", value=asked, views=asked, uniques=0, shares={},
            shares_total=0, referrals={}, title="One",
        )  # fmt: skip
        return Report(start="", end="", rows=[row])

    async def labels(self) -> tuple[set[str], set[str]]:
        return {"politics"}, {"en"}


class Monotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def setup(
    aiohttp_client: AiohttpClient, settings: Settings
) -> tuple[TestClient[Any, Any], SlowReports, Monotonic]:
    reports, monotonic = SlowReports(), Monotonic()
    app = web.Application(middlewares=[tracker_middleware])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[LOOP_LAG] = LoopLag(settings.max_loop_lag_s)
    app[DEADLINES] = Deadlines(settings.request_timeout_s)
    # Only the reports are asked for: the rest of the services is never read.
    app[SERVICES] = cast(Services, SimpleNamespace(reports=reports))
    app[CLOCK] = time.time
    app[PROXIES] = TrustedProxies(())
    route = PopularRoute(settings, app[METRICS], MostRead(monotonic=monotonic))
    app.router.add_get("/api/v1/popular", route.answer)
    return await aiohttp_client(app), reports, monotonic


async def views_of(client: TestClient[Any, Any]) -> tuple[int, int | None]:
    response = await client.get("/api/v1/popular")
    if response.status != 200:
        return response.status, None
    return 200, (await response.json())["articles"][0]["views"]


async def test_many_at_once_ask_once(
    setup: tuple[TestClient[Any, Any], SlowReports, Monotonic],
) -> None:
    client, reports, _ = setup
    reports.gate.clear()
    waiting = [asyncio.create_task(views_of(client)) for _ in range(50)]
    await asyncio.sleep(0.2)
    reports.gate.set()
    assert await asyncio.gather(*waiting) == [(200, 1)] * 50
    assert reports.asked == 1


async def test_a_stale_list_is_served_while_one_request_refreshes_it(
    setup: tuple[TestClient[Any, Any], SlowReports, Monotonic],
) -> None:
    client, reports, monotonic = setup
    assert await views_of(client) == (200, 1)
    monotonic.now += FRESH_S + 1
    reports.gate.clear()
    refreshing = asyncio.create_task(views_of(client))
    await asyncio.sleep(0.1)
    others = await asyncio.gather(*[views_of(client) for _ in range(20)])
    assert others == [(200, 1)] * 20  # at once, from the stale list
    reports.gate.set()
    assert await refreshing == (200, 2)
    assert await views_of(client) == (200, 2)
    assert reports.asked == 2


async def test_an_old_list_beats_an_error_until_it_is_too_old(
    setup: tuple[TestClient[Any, Any], SlowReports, Monotonic],
) -> None:
    client, reports, monotonic = setup
    assert await views_of(client) == (200, 1)
    reports.failure = DatabaseUnavailable("PostgreSQL is down")
    monotonic.now += FRESH_S + 1
    assert await views_of(client) == (200, 1)
    monotonic.now += STALE_S
    assert await views_of(client) == (503, None)


async def test_those_waiting_get_the_error_of_the_one_who_asked(
    setup: tuple[TestClient[Any, Any], SlowReports, Monotonic],
) -> None:
    client, reports, _ = setup
    reports.gate.clear()
    reports.failure = DatabaseUnavailable("PostgreSQL is down")
    waiting = [asyncio.create_task(views_of(client)) for _ in range(10)]
    await asyncio.sleep(0.2)
    reports.gate.set()
    assert await asyncio.gather(*waiting) == [(503, None)] * 10
    assert reports.asked == 1
    reports.failure = None
    assert await views_of(client) == (200, 2)
