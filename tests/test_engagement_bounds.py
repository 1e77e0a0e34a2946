"""Engagement cannot be inflated: a reader's engaged seconds on an article never exceed
the time since its counted view (nor 1,800 a view); engagement with no counted view of
that reader counts nothing; readers past their address's bound add nothing.

Before: one reader's 100 engage events of `engaged_s: 1800` gave an article
engaged_avg_s 900,000; 24 engage events with `seq: 0, depth: 100` and no view gave 20
engaged readers and read-through 1.0 (the top of `metric=read_through`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.helpers import (
    BROWSER_UA,
    Client,
    Clock,
    MakeClient,
    morning_clock,
    sample,
    stats,
    view,
)
from tracker.core.settings import Settings
from tracker.web.app_keys import CLOCK

PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


def engage(article_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "engage", "article_id": article_id, **fields}


async def post(
    client: Client, events: list[dict[str, Any]], address: str, agent: str = BROWSER_UA
) -> None:
    for start in range(0, len(events), 100):
        response = await client.post(
            "/api/v1/events",
            json={"events": events[start : start + 100]},
            headers={"X-Forwarded-For": address, "User-Agent": agent},
        )
        assert response.status == 202, await response.text()


async def reader_client(settings: Settings, make_client: MakeClient, **changes: Any) -> Client:
    return await make_client(
        settings.with_overrides(dedup_window_s=1800, trusted_proxies=PROXY, **changes),
        clock=morning_clock(),
    )


def later(client: Client, seconds: float) -> None:
    clock = client.app[CLOCK]
    assert isinstance(clock, Clock)
    clock.now += seconds


async def test_engaged_seconds_never_exceed_the_time_since_the_readers_view(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await reader_client(settings, make_client)
    await post(client, [view("eb/1")], "203.0.113.10")
    later(client, 120)
    events = [engage("eb/1", engaged_s=1800, seq=n, id=f"e{n}") for n in range(100)]
    await post(client, events, "203.0.113.10")

    body = await stats(client, "eb/1")
    # 120 s since the view: all of it in the first engage event, nothing more after.
    assert (body["engaged_readers"], body["engaged_avg_s"]) == (1, 120.0)
    assert sample(client, "tracker_events_ignored_total", reason="engaged_limit") == 99


async def test_a_view_grants_at_most_1800_engaged_seconds(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await reader_client(settings, make_client)
    await post(client, [view("eb/2")], "203.0.113.11")
    later(client, 3 * 3600)  # a tab left open long past the 30 minutes a page counts
    events = [engage("eb/2", engaged_s=1800, seq=n, id=f"e{n}") for n in range(3)]
    await post(client, events, "203.0.113.11")
    assert (await stats(client, "eb/2"))["engaged_avg_s"] == 1800.0
    await post(client, [view("eb/3")], "203.0.113.11")
    later(client, 1700)
    await post(client, [engage("eb/3", engaged_s=1800, seq=0)], "203.0.113.11")
    later(client, 600)
    await post(client, [engage("eb/3", engaged_s=1800, seq=1)], "203.0.113.11")
    assert (await stats(client, "eb/3"))["engaged_avg_s"] == 1800.0


async def test_engagement_without_a_counted_view_counts_nothing(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await reader_client(settings, make_client)
    for n in range(24):
        event = engage("eb/4", engaged_s=600, depth=100, seq=0)
        await post(client, [event], "203.0.113.12", f"{BROWSER_UA} r{n}")

    body = await stats(client, "eb/4")
    assert (body["engaged_readers"], body["read_through"], body["engaged_avg_s"]) == (0, 0, 0)
    assert body["read_depth"] == {"25": 0, "50": 0, "75": 0, "100": 0}
    assert sample(client, "tracker_events_ignored_total", reason="no_view") == 24


async def test_readers_past_their_addresss_bound_add_no_engagement(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await reader_client(settings, make_client, max_readers_per_address=2)
    for n in range(5):
        await post(client, [view("eb/5")], "203.0.113.13", f"{BROWSER_UA} r{n}")
    later(client, 300)
    for n in range(5):
        event = engage("eb/5", engaged_s=100, depth=100, seq=0)
        await post(client, [event], "203.0.113.13", f"{BROWSER_UA} r{n}")

    body = await stats(client, "eb/5")
    assert (body["views"], body["engaged_readers"], body["engaged_avg_s"]) == (2, 2, 100.0)
    assert body["read_depth"]["100"] == 2
    assert sample(client, "tracker_events_ignored_total", reason="address_limit") == 3
    assert sample(client, "tracker_events_ignored_total", reason="no_view") == 3
