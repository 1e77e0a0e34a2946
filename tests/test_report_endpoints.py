"""Trending, take-off, an article's curve, the public most-read list, and `tracker report`
giving what the API gives."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import Client, Clock, MakeClient, flush, process_env, share, view
from tracker.core.settings import Settings
from tracker.pg.auth import Tokens
from tracker.web.app_keys import SERVICES

HOUR = 3_600


def next_midnight() -> int:
    """A simulated now in the future (Redis expiries made from it are not past)."""
    return (int(datetime.now(tz=UTC).timestamp()) // 86_400 + 3) * 86_400


@dataclass
class Editor:
    client: Client
    clock: Clock
    headers: dict[str, str]
    settings: Settings

    async def post(self, *events: dict[str, Any], reader: int = 0) -> None:
        for n, event in enumerate(events):
            address = str(ipaddress.IPv4Address("10.1.0.0") + reader * 1000 + n)
            response = await self.client.post(
                "/api/v1/events", json=event, headers={"X-Forwarded-For": address}
            )
            assert response.status == 202

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        response = await self.client.get(path, params=params, headers=self.headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def editor_on(settings: Settings, make_client: MakeClient, clock: Clock) -> Editor:
    served = settings.with_overrides(
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),), rate_limit_per_min=0
    )
    client = await make_client(served, clock=clock)
    token = await Tokens(client.app[SERVICES].pool).create("test")
    return Editor(client, clock, {"Authorization": f"Bearer {token}"}, served)


@pytest.fixture
async def editor(settings: Settings, make_client: MakeClient) -> Editor:
    """On a simulated clock, days ahead."""
    return await editor_on(settings, make_client, Clock(next_midnight() + 10 * HOUR))


async def test_trending_compares_the_window_with_the_one_before(editor: Editor) -> None:
    await editor.post(*[view("tr/steady")] * 4, view("tr/new"))
    editor.clock.now += 15 * 60  # the next 15-minute window
    await editor.post(*[view("tr/steady")] * 4, *[view("tr/new")] * 6, share("tr/new", "vk"))

    views = await editor.get("/api/v1/reports/trending", window="15m")
    shares = await editor.get("/api/v1/reports/trending", window="15m", metric="shares")
    five = await editor.get("/api/v1/reports/trending", window="5m")

    assert [(r["article_id"], r["value"], r["previous"], r["rise"]) for r in views["rows"]] == [
        ("tr/new", 6, 1, 6.0),
        ("tr/steady", 4, 4, 1.0),
    ]
    assert views["rows"][0]["views"] == 7  # the last hour's counts beside
    assert [(r["article_id"], r["value"], r["previous"], r["rise"]) for r in shares["rows"]] == [
        ("tr/new", 1, 0, None)
    ]
    assert [(r["article_id"], r["value"]) for r in five["rows"]] == [
        ("tr/new", 6),
        ("tr/steady", 4),
    ]


async def test_takeoff_ranks_by_views_in_the_first_window(editor: Editor) -> None:
    await editor.post(view("to/fast"), view("to/slow"))
    await flush(editor.client)  # both published now
    await editor.post(*[view("to/fast")] * 5, view("to/slow"), reader=1)
    editor.clock.now += 3 * HOUR  # past the first hour of both
    await editor.post(*[view("to/slow")] * 20, reader=2)
    await flush(editor.client)

    first_hour = await editor.get("/api/v1/reports/takeoff", window="1h", period="24h")
    first_day = await editor.get("/api/v1/reports/takeoff", window="24h", period="24h")

    assert [(r["article_id"], r["value"]) for r in first_hour["rows"]] == [
        ("to/fast", 6),
        ("to/slow", 2),
    ]
    assert [(r["article_id"], r["value"]) for r in first_day["rows"]] == [
        ("to/slow", 22),
        ("to/fast", 6),
    ]


async def test_an_articles_curve_is_zero_filled_and_aligns_on_publication(editor: Editor) -> None:
    start = editor.clock.now
    await editor.post(view("ts/a"), view("ts/a"))
    await flush(editor.client)
    editor.clock.now = start + 2 * HOUR
    await editor.post(view("ts/a"), share("ts/a", "telegram"), reader=1)

    hourly = await editor.get("/api/v1/articles/ts/a/timeseries", period="24h")
    aligned = await editor.get(
        "/api/v1/articles/ts/a/timeseries", period="24h", since_publish="true"
    )
    daily = await editor.get("/api/v1/articles/ts/a/timeseries", period="7d", granularity="day")

    assert len(hourly["buckets"]) == 25
    assert [b["views"] for b in hourly["buckets"]][-3:] == [2, 0, 1]
    assert hourly["buckets"][-1]["shares"]["telegram"] == 1
    assert all(b["uniques"] is None for b in hourly["buckets"])
    assert [(b["offset"], b["views"]) for b in aligned["buckets"][:3]] == [(0, 2), (1, 0), (2, 1)]
    assert aligned["buckets"][0]["start"] == aligned["published"][:14] + "00:00Z"
    assert [b["views"] for b in daily["buckets"]] == [0] * 6 + [3]
    assert daily["buckets"][-1]["uniques"] == 3  # three addresses: three readers


async def test_the_public_most_read_list_needs_no_token_and_is_cached(
    settings: Settings, make_client: MakeClient
) -> None:
    # Events of a trusted sender: their metadata is the articles' (the list shows only
    # verified titles and links).
    trusted = settings.with_overrides(trust_event_metadata=True)
    editor = await editor_on(trusted, make_client, Clock(next_midnight() + 10 * HOUR))
    await editor.post(
        view("mr/1", title="One", url="https://news.example/1", category="politics"),
        view("mr/1"),
        view("mr/2", title="Two", url="https://news.example/2?session=x", category="sport"),
    )
    await flush(editor.client)
    client = editor.client
    first = await client.get("/api/v1/popular", params={"period": "24h"})
    body = await first.json()
    await editor.post(*[view("mr/2")] * 5, reader=3)
    cached = await client.get("/api/v1/popular", params={"period": "24h"})
    again = await client.get(
        "/api/v1/popular",
        params={"period": "24h"},
        headers={"If-None-Match": first.headers["ETag"]},
    )
    politics = await (await client.get("/api/v1/popular?category=politics")).json()
    too_many = await client.get("/api/v1/popular", params={"limit": "21"})

    assert first.status == 200
    assert "public" in first.headers["Cache-Control"]
    assert int(first.headers["Cache-Control"].split("max-age=")[1]) >= 30
    assert body["articles"] == [
        {"article_id": "mr/1", "title": "One", "url": "https://news.example/1", "views": 2},
        {"article_id": "mr/2", "title": "Two", "url": "https://news.example/2", "views": 1},
    ]
    assert await cached.json() == body  # the same answer for 30 s
    assert again.status == 304
    assert [a["article_id"] for a in politics["articles"]] == ["mr/1"]
    assert too_many.status == 400


@pytest.mark.slow
async def test_the_report_command_gives_what_the_api_gives(
    settings: Settings, make_client: MakeClient
) -> None:
    # The command runs on the real clock: so does the app here.
    editor = await editor_on(settings, make_client, Clock(time.time()))
    await editor.post(view("cli/1", title="One"), view("cli/1"), view("cli/2"))
    await flush(editor.client)
    api = await editor.get("/api/v1/reports/popular", period="all", metric="views")

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracker", "report", *args],
            env=process_env(editor.settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    as_json = await asyncio.to_thread(command, "popular", "--period", "all", "--json")
    as_table = await asyncio.to_thread(command, "popular", "--period", "all")
    as_csv = await asyncio.to_thread(command, "trending", "--csv")

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["rows"] == api["rows"]
    assert "cli/1" in as_table.stdout
    assert as_csv.stdout.startswith("rank,article_id,title")
