"""CORS: pages of the allowed origins may send events and read counts; others may not."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponse

from tests.helpers import Client, MakeClient, sample, stats, view
from tracker.core.settings import Settings

NEWS = "https://news.example"
EVIL = "https://evil.example"
EVENTS = "/api/v1/events"


@pytest.fixture
async def news(settings: Settings, make_client: MakeClient) -> Client:
    return await make_client(settings.with_overrides(allowed_origins=(NEWS,)))


async def preflight(client: Client, origin: str, path: str = EVENTS) -> ClientResponse:
    return await client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


async def beacon(client: Client, origin: str | None, article_id: str) -> ClientResponse:
    """What navigator.sendBeacon sends: a text/plain POST, without a preflight."""
    headers = {"Content-Type": "text/plain;charset=UTF-8"}
    if origin is not None:
        headers["Origin"] = origin
    return await client.post(
        EVENTS, data=f'{{"type":"view","article_id":"{article_id}"}}', headers=headers
    )


def vary(response: ClientResponse) -> set[str]:
    return {
        part.strip().lower()
        for value in response.headers.getall("Vary", ())
        for part in value.split(",")
    }


async def test_preflight_from_an_allowed_origin(news: Client) -> None:
    response = await preflight(news, NEWS)

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == NEWS
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert "POST" in methods
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "origin" in vary(response)
    assert await response.read() == b""


async def test_preflight_of_a_stats_read(news: Client) -> None:
    response = await news.options(
        "/api/v1/articles/a-1/stats",
        headers={"Origin": NEWS, "Access-Control-Request-Method": "GET"},
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == NEWS
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


async def test_preflight_from_another_origin_is_refused(news: Client) -> None:
    response = await preflight(news, EVIL)

    assert response.status == 403
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == "origin_not_allowed"
    assert body["detail"]["field"] == "Origin"
    assert EVIL in body["detail"]["message"]
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_beacon_from_an_allowed_origin_is_counted(news: Client) -> None:
    response = await beacon(news, NEWS, "cors-a")

    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 1}
    assert response.headers["Access-Control-Allow-Origin"] == NEWS
    assert "origin" in vary(response)
    assert (await stats(news, "cors-a"))["views"] == 1


async def test_beacon_from_another_origin_is_refused_and_not_counted(news: Client) -> None:
    response = await beacon(news, EVIL, "cors-b")

    assert response.status == 403
    body = await response.json()
    assert body["error"] == "origin_not_allowed"
    assert body["detail"]["field"] == "Origin"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert (await stats(news, "cors-b"))["views"] == 0
    assert sample(news, "tracker_events_rejected_total", reason="origin") == 1.0
    accepted = sample(news, "tracker_events_accepted_total", type="view")
    assert accepted == 0.0


async def test_json_post_from_an_allowed_origin(news: Client) -> None:
    response = await news.post(EVENTS, json=view("cors-json"), headers={"Origin": NEWS})
    assert response.status == 202
    assert response.headers["Access-Control-Allow-Origin"] == NEWS
    assert (await stats(news, "cors-json"))["views"] == 1


async def test_server_side_post_without_origin_is_accepted(news: Client) -> None:
    response = await beacon(news, None, "cors-c")

    assert response.status == 202
    assert "Access-Control-Allow-Origin" not in response.headers
    assert (await stats(news, "cors-c"))["views"] == 1
    assert sample(news, "tracker_events_rejected_total", reason="origin") == 0.0


async def test_stats_readable_by_the_allowed_origin_only(news: Client) -> None:
    allowed = await news.get("/api/v1/articles/cors-d/stats", headers={"Origin": NEWS})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == NEWS
    assert "ETag" in allowed.headers["Access-Control-Expose-Headers"]

    other = await news.get("/api/v1/articles/cors-d/stats", headers={"Origin": EVIL})
    # Answered (a GET changes nothing), but a browser keeps it from the other page.
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers

    listing = await news.get("/api/v1/articles/stats?ids=a,b", headers={"Origin": NEWS})
    assert listing.status == 200
    assert listing.headers["Access-Control-Allow-Origin"] == NEWS


async def test_errors_for_an_allowed_origin_are_readable(news: Client) -> None:
    """A page must be able to read why an event was refused (and Retry-After, which the
    service exposes): error responses carry the CORS headers too."""
    invalid = await news.post(EVENTS, json=view("bad id!"), headers={"Origin": NEWS})
    assert invalid.status == 400
    assert (await invalid.json())["detail"]["field"] == "article_id"
    assert invalid.headers["Access-Control-Allow-Origin"] == NEWS

    bad_id = await news.get("/api/v1/articles/bad%20id/stats", headers={"Origin": NEWS})
    assert bad_id.status == 400
    assert bad_id.headers["Access-Control-Allow-Origin"] == NEWS


async def test_unavailable_answer_for_an_allowed_origin_is_readable(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(allowed_origins=(NEWS,), redis_url="redis://127.0.0.1:1/0")
    )
    response = await beacon(client, NEWS, "cors-down")

    assert response.status == 503
    assert "Retry-After" in response.headers
    assert response.headers["Access-Control-Allow-Origin"] == NEWS
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


async def test_any_origin_with_star(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=("*",)))

    for origin in (NEWS, EVIL, "http://localhost:3000"):
        answer = await preflight(client, origin)
        assert answer.status == 204
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        posted = await beacon(client, origin, "cors-star")
        assert posted.status == 202
        assert posted.headers["Access-Control-Allow-Origin"] == "*"
        read = await client.get("/api/v1/articles/cors-star/stats", headers={"Origin": origin})
        assert read.headers["Access-Control-Allow-Origin"] == "*"
    assert (await stats(client, "cors-star"))["views"] == 3
    assert sample(client, "tracker_events_rejected_total", reason="origin") == 0.0


async def test_the_services_own_origin_is_allowed_with_an_empty_list(client: Client) -> None:
    """The demo pages and /reports are served by the service itself."""
    own = f"http://{client.host}:{client.port}"

    response = await beacon(client, own, "cors-own")
    assert response.status == 202, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == own
    assert (await preflight(client, own)).status == 204

    other = await beacon(client, NEWS, "cors-own")
    assert other.status == 403
    assert (await stats(client, "cors-own"))["views"] == 1
    assert sample(client, "tracker_events_rejected_total", reason="origin") == 1.0


async def test_allowed_origin_in_the_list_must_match_exactly(news: Client) -> None:
    for lookalike in (
        "http://news.example",  # another scheme
        "https://news.example.evil.example",
        "https://evil-news.example",
        "https://news.example:8443",
        "null",
    ):
        response = await beacon(news, lookalike, "cors-lookalike")
        assert response.status == 403, lookalike
    assert (await stats(news, "cors-lookalike"))["views"] == 0
    assert sample(news, "tracker_events_rejected_total", reason="origin") == 5.0


async def test_a_host_header_naming_another_site_does_not_let_that_site_in_later(
    news: Client,
) -> None:
    """The service's own origin is judged by each request's Host: one request that names
    a foreign site as its Host (and so passes as the service's own) must not leave that
    site allowed for the requests that follow."""
    spoofed = await news.post(
        EVENTS,
        json=view("cors-host"),
        headers={"Origin": EVIL, "Host": EVIL.removeprefix("https://")},
    )
    assert spoofed.status == 202

    after = await beacon(news, EVIL, "cors-host")
    assert after.status == 403
    read = await news.get("/api/v1/articles/cors-host/stats", headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in read.headers
