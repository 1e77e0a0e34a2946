"""A reader's repeat of the same event on the same article within the window is
acknowledged and not counted; atomically, even for concurrent identical requests."""

from __future__ import annotations

import asyncio

from tests.helpers import Client, MakeClient, post_events, sample, share, stats, view
from tracker.core.settings import Settings


async def test_fifty_concurrent_reloads_count_once(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800))

    statuses = await asyncio.gather(*(post_events(client, view("d1")) for _ in range(50)))

    assert statuses == [202] * 50
    assert (await stats(client, "d1"))["views"] == 1
    assert sample(client, "tracker_events_ignored_total", reason="duplicate") == 49


async def test_repeat_within_one_batch_counts_once(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800))
    assert await post_events(client, view("d2"), view("d2"), view("d3")) == 202
    assert (await stats(client, "d2"))["views"] == 1
    assert (await stats(client, "d3"))["views"] == 1


async def test_window_zero_counts_every_load(client: Client, settings: Settings) -> None:
    assert settings.dedup_window_s == 0
    for _ in range(5):
        assert await post_events(client, view("d4")) == 202
    assert (await stats(client, "d4"))["views"] == 5
    assert sample(client, "tracker_events_ignored_total", reason="duplicate") == 0


async def test_repeat_counts_again_after_the_window(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1))
    await post_events(client, view("d5"))
    await post_events(client, view("d5"))
    assert (await stats(client, "d5"))["views"] == 1

    await asyncio.sleep(1.2)
    await post_events(client, view("d5"))

    assert (await stats(client, "d5"))["views"] == 2


async def test_shares_repeat_per_channel(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800))
    for _ in range(3):
        await post_events(client, share("d6", "telegram"))
    await post_events(client, share("d6", "facebook"), view("d6"))

    body = await stats(client, "d6")

    assert body["shares"]["telegram"] == 1
    assert body["shares"]["facebook"] == 1
    assert body["views"] == 1  # a share does not use up the view, nor the reverse


async def test_other_readers_are_not_repeats(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800))
    await post_events(client, view("d7"))
    response = await client.post(
        "/api/v1/events",
        json=view("d7"),
        headers={
            "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) "
            "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
        },
    )
    assert response.status == 202
    body = await stats(client, "d7")
    assert body["views"] == 2
    assert body["uniques"] == 2


async def test_do_not_track_is_honoured_only_when_configured(
    settings: Settings, make_client: MakeClient
) -> None:
    respecting = await make_client(settings.with_overrides(respect_dnt=True))
    for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
        response = await respecting.post("/api/v1/events", json=view("dnt"), headers=header)
        assert response.status == 202
    assert (await stats(respecting, "dnt"))["views"] == 0
    assert sample(respecting, "tracker_events_ignored_total", reason="dnt") == 2

    response = await respecting.post("/api/v1/events", json=view("dnt"), headers={"DNT": "0"})
    assert response.status == 202
    assert (await stats(respecting, "dnt"))["views"] == 1

    ignoring = await make_client(settings)  # respect_dnt off (the default)
    await ignoring.post("/api/v1/events", json=view("dnt2"), headers={"DNT": "1"})
    assert (await stats(ignoring, "dnt2"))["views"] == 1
