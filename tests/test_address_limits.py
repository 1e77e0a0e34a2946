"""One address cannot inflate counts: rotating User-Agents count up to a bound of readers
per article, requests beyond a rate get 429, the pixel keeps to the allowlist, and a
site can require an Origin."""

from __future__ import annotations

import ipaddress

from tests.helpers import BROWSER_UA, Client, MakeClient, sample, stats, view
from tracker.core.settings import Settings

EVENTS = "/api/v1/events"
PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


def agent(n: int) -> str:
    return BROWSER_UA.replace("Chrome/131", f"Chrome/{100 + n}")


async def post_as(client: Client, article_id: str, user_agent: str, address: str) -> int:
    response = await client.post(
        EVENTS,
        json=view(article_id),
        headers={"User-Agent": user_agent, "X-Forwarded-For": address},
    )
    return response.status


async def test_one_address_rotating_its_agent_counts_up_to_the_bound(
    settings: Settings, make_client: MakeClient
) -> None:
    """Before: 20 POSTs from one address with 20 agents were 20 views."""
    client = await make_client(
        settings.with_overrides(
            dedup_window_s=1800, max_readers_per_address=10, trusted_proxies=PROXY
        )
    )

    statuses = [await post_as(client, "rot", agent(n), "198.51.100.7") for n in range(20)]

    assert statuses == [202] * 20
    assert (await stats(client, "rot"))["views"] == 10
    assert sample(client, "tracker_events_ignored_total", reason="address_limit") == 10


async def test_readers_behind_one_nat_still_count_up_to_the_bound_per_article(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(
            dedup_window_s=1800, max_readers_per_address=3, trusted_proxies=PROXY
        )
    )
    for n in range(3):
        await post_as(client, "nat-a", agent(n), "198.51.100.8")
        await post_as(client, "nat-b", agent(n), "198.51.100.8")
    # Another address is another set of readers.
    await post_as(client, "nat-a", agent(0), "198.51.100.9")

    assert [(await stats(client, a))["views"] for a in ("nat-a", "nat-b")] == [4, 3]
    assert sample(client, "tracker_events_ignored_total", reason="address_limit") == 0


async def test_no_bound_when_set_to_zero(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(
        settings.with_overrides(
            dedup_window_s=1800, max_readers_per_address=0, trusted_proxies=PROXY
        )
    )
    for n in range(15):
        await post_as(client, "unbound", agent(n), "198.51.100.10")
    assert (await stats(client, "unbound"))["views"] == 15


async def test_requests_over_the_rate_get_429_with_retry_after(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(rate_limit_per_min=5.0, trusted_proxies=PROXY)
    )

    statuses = [await post_as(client, f"rate-{n}", BROWSER_UA, "198.51.100.11") for n in range(7)]
    limited = await client.post(
        EVENTS, json=view("rate-x"), headers={"X-Forwarded-For": "198.51.100.11"}
    )
    other = await post_as(client, "rate-other", BROWSER_UA, "198.51.100.12")

    assert statuses == [202] * 5 + [429] * 2
    body = await limited.json()
    assert limited.status == 429
    assert body["error"] == "rate_limited"
    assert body["detail"]["field"] == "address"
    # One request per 12 s at 5/min: the next one is allowed within that.
    assert 1 <= int(limited.headers["Retry-After"]) <= 12
    assert other == 202  # another address has its own budget
    assert sample(client, "tracker_events_rejected_total", reason="rate_limited") == 3
    assert [(await stats(client, f"rate-{n}"))["views"] for n in range(7)] == [1] * 5 + [0] * 2


async def test_a_batch_over_the_rate_is_refused_whole(
    settings: Settings, make_client: MakeClient
) -> None:
    """The rate counts events: at 2 a minute, a batch of two spends the minute's burst."""
    client = await make_client(
        settings.with_overrides(rate_limit_per_min=2.0, trusted_proxies=PROXY)
    )
    headers = {"X-Forwarded-For": "198.51.100.13"}
    first = await client.post(EVENTS, json={"events": [view("b1"), view("b2")]}, headers=headers)
    second = await client.post(EVENTS, json={"events": [view("b1"), view("b2")]}, headers=headers)

    assert (first.status, second.status) == (202, 429)
    assert [(await stats(client, a))["views"] for a in ("b1", "b2")] == [1, 1]
    assert sample(client, "tracker_events_rejected_total", reason="rate_limited") == 2


async def pixel(client: Client, referer: str | None) -> None:
    headers = {"Referer": referer} if referer else {}
    response = await client.get("/p.gif", params={"a": "px-origin"}, headers=headers)
    assert response.status == 200
    assert response.content_type == "image/gif"


async def test_the_pixel_counts_only_pages_of_allowed_origins(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=("https://news.example",)))

    await pixel(client, "https://news.example/2026/story")
    await pixel(client, "https://elsewhere.example/copied-page")
    await pixel(client, None)  # e-mail clients and strict referrer policies send none

    assert (await stats(client, "px-origin"))["views"] == 2
    assert sample(client, "tracker_pixel_errors_total", reason="origin") == 1


async def test_a_post_without_origin_is_accepted_by_default(client: Client) -> None:
    """Server-side senders send no Origin (README: Limits and guarantees)."""
    assert (await client.post(EVENTS, json=view("no-origin"))).status == 202


async def test_require_origin_refuses_a_post_without_one_unless_from_a_proxy(
    settings: Settings, make_client: MakeClient
) -> None:
    strict = await make_client(settings.with_overrides(require_origin=True))
    refused = await strict.post(EVENTS, json=view("req-origin"))
    body = await refused.json()

    behind_proxy = await make_client(
        settings.with_overrides(require_origin=True, trusted_proxies=PROXY)
    )
    relayed = await behind_proxy.post(
        EVENTS, json=view("req-origin"), headers={"X-Forwarded-For": "198.51.100.14"}
    )

    assert refused.status == 403
    assert body["detail"]["field"] == "Origin"
    assert relayed.status == 202
    assert sample(strict, "tracker_events_rejected_total", reason="origin") == 1
