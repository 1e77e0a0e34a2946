"""/p.gif: counts like a beacon for pages without JavaScript, and always answers the GIF."""

from __future__ import annotations

import struct

import pytest
from aiohttp import ClientResponse

from tests.helpers import Client, MakeClient, flush, sample, stats
from tracker.core.settings import Settings
from tracker.web.snippet import PIXEL_GIF


async def assert_gif(response: ClientResponse) -> None:
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.read()
    assert body == PIXEL_GIF
    assert body[:6] == b"GIF89a"
    assert struct.unpack("<HH", body[6:10]) == (1, 1)  # logical screen: 1x1
    assert body.endswith(b";")
    assert int(response.headers["Content-Length"]) == len(body)


def test_the_gif_is_a_1x1_image() -> None:
    assert PIXEL_GIF[:6] == b"GIF89a"
    assert struct.unpack("<HH", PIXEL_GIF[6:10]) == (1, 1)
    assert len(PIXEL_GIF) < 100


async def test_view_pixel_counts_a_view(client: Client) -> None:
    response = await client.get("/p.gif", params={"a": "px-view"})

    await assert_gif(response)
    body = await stats(client, "px-view")
    assert (body["views"], body["uniques"], body["shares_total"]) == (1, 1, 0)
    assert sample(client, "tracker_events_accepted_total", type="view") == 1.0
    assert sample(client, "tracker_pixel_errors_total", reason="invalid") == 0.0


async def test_type_defaults_to_view_and_explicit_view_is_the_same(client: Client) -> None:
    await assert_gif(await client.get("/p.gif", params={"a": "px-v2"}))
    await assert_gif(await client.get("/p.gif", params={"a": "px-v2", "t": "view"}))
    assert (await stats(client, "px-v2"))["views"] == 2


async def test_share_pixel_counts_a_share(client: Client) -> None:
    response = await client.get("/p.gif", params={"a": "px-share", "t": "share", "c": "telegram"})

    await assert_gif(response)
    body = await stats(client, "px-share")
    assert body["shares"]["telegram"] == 1
    assert body["shares_total"] == 1
    assert body["views"] == 0
    assert sample(client, "tracker_events_accepted_total", type="share") == 1.0


async def test_pixel_counts_survive_a_flush_and_match_a_beacon(client: Client) -> None:
    for _ in range(2):
        await assert_gif(await client.get("/p.gif", params={"a": "px-both"}))
    await assert_gif(
        await client.get("/p.gif", params={"a": "px-both", "t": "share", "c": "whatsapp"})
    )
    beacon = await client.post("/api/v1/events", json={"type": "view", "article_id": "px-both"})
    assert beacon.status == 202

    await flush(client)

    body = await stats(client, "px-both")
    assert body["views"] == 3
    assert body["uniques"] == 1  # the same reader, whichever way it was counted
    assert body["shares"]["whatsapp"] == 1


async def test_pixel_repeat_is_not_counted_within_the_dedup_window(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=600))
    for _ in range(3):
        await assert_gif(await client.get("/p.gif", params={"a": "px-dedup"}))
    assert (await stats(client, "px-dedup"))["views"] == 1
    duplicates = sample(client, "tracker_events_ignored_total", reason="duplicate")
    assert duplicates == 2.0


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="missing-a"),
        pytest.param({"a": ""}, id="empty-a"),
        pytest.param({"a": "bad id!"}, id="bad-id"),
        pytest.param({"a": "x" * 129}, id="id-too-long"),
        pytest.param({"a": "px-bad", "t": "share"}, id="share-without-channel"),
        pytest.param({"a": "px-bad", "t": "share", "c": "myspace"}, id="bad-channel"),
        pytest.param({"a": "px-bad", "t": "click"}, id="bad-type"),
        pytest.param({"a": "px-bad", "u": "https://news.example/\x00"}, id="nul-in-url"),
        pytest.param({"a": "px-bad", "u": "https://news.example/" + "x" * 3000}, id="long-url"),
    ],
)
async def test_invalid_input_still_answers_the_gif(client: Client, params: dict[str, str]) -> None:
    response = await client.get("/p.gif", params=params)

    await assert_gif(response)
    assert sample(client, "tracker_pixel_errors_total", reason="invalid") == 1.0
    assert sample(client, "tracker_pixel_errors_total", reason="unavailable") == 0.0
    assert sample(client, "tracker_events_accepted_total", type="view") == 0.0
    assert sample(client, "tracker_events_accepted_total", type="share") == 0.0
    body = await stats(client, "px-bad")
    assert (body["views"], body["shares_total"]) == (0, 0)


async def test_invalid_pixels_are_counted_one_each(client: Client) -> None:
    for params in ({}, {"a": "bad id"}, {"a": "ok", "t": "share"}):
        await assert_gif(await client.get("/p.gif", params=params))
    assert sample(client, "tracker_pixel_errors_total", reason="invalid") == 3.0


async def test_redis_unavailable_still_answers_the_gif(
    settings: Settings, make_client: MakeClient
) -> None:
    # Nothing listens on port 1; the app connects to Redis lazily, so it starts anyway.
    client = await make_client(settings.with_overrides(redis_url="redis://127.0.0.1:1/0"))

    for params in ({"a": "px-down"}, {"a": "px-down", "t": "share", "c": "vk"}):
        await assert_gif(await client.get("/p.gif", params=params))

    assert sample(client, "tracker_pixel_errors_total", reason="unavailable") == 2.0
    assert sample(client, "tracker_pixel_errors_total", reason="invalid") == 0.0
    assert sample(client, "tracker_events_accepted_total", type="view") == 0.0
    # The beacon, by contrast, says it could not store the event.
    beacon = await client.post("/api/v1/events", json={"type": "view", "article_id": "px-down"})
    assert beacon.status == 503


async def test_referral_from_utm_source_in_u(client: Client) -> None:
    response = await client.get(
        "/p.gif",
        params={"a": "px-ref", "u": "https://news.example/story?utm_source=telegram&utm_medium=x"},
    )

    await assert_gif(response)
    body = await stats(client, "px-ref")
    assert body["views"] == 1
    assert body["referrals"]["telegram"] == 1
    assert sum(body["referrals"].values()) == 1


async def test_referral_from_r_and_from_the_referer_header(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=("https://news.example",)))
    await assert_gif(
        await client.get("/p.gif", params={"a": "px-ref2", "r": "https://l.facebook.com/l.php"})
    )
    # Without `u`, the page's address is the request's Referer (an <img> on the page).
    await assert_gif(
        await client.get(
            "/p.gif",
            params={"a": "px-ref2"},
            headers={"Referer": "https://news.example/story?utm_source=newsletter"},
        )
    )
    body = await stats(client, "px-ref2")
    assert body["views"] == 2
    assert body["referrals"]["facebook"] == 1
    assert body["referrals"]["email"] == 1


async def test_pixel_is_not_cacheable_even_when_conditional(client: Client) -> None:
    first = await client.get("/p.gif", params={"a": "px-cache"})
    await assert_gif(first)
    again = await client.get(
        "/p.gif",
        params={"a": "px-cache"},
        headers={"If-None-Match": "*", "If-Modified-Since": first.headers.get("Date", "")},
    )
    await assert_gif(again)
    assert (await stats(client, "px-cache"))["views"] == 2
