"""One error map: every refusal answers its status with the JSON shape and counts its
events once, under its own reason, and under no other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import Client, MakeClient, sample, view
from tracker.core.errors import Rejected
from tracker.core.settings import Settings
from tracker.ops.embedded import EmbeddedRedis
from tracker.web.responses import STATUS

EVENTS = "/api/v1/events"


def rejections(client: Client) -> dict[str, float]:
    return {
        reason.value: sample(client, "tracker_events_rejected_total", reason=reason.value) or 0.0
        for reason in Rejected
    }


def only(reason: Rejected, count: float) -> dict[str, float]:
    counts = dict.fromkeys((r.value for r in Rejected), 0.0)
    counts[reason.value] = count
    return counts


REFUSED: list[tuple[Rejected, dict[str, Any], str]] = [
    (Rejected.INVALID, {"data": b"{not json", "headers": {"Content-Type": "text/plain"}}, "body"),
    (
        Rejected.INVALID,
        {"json": {"type": "share", "article_id": "a1"}},
        "channel",
    ),
    (
        Rejected.TOO_LARGE,
        {"data": b"x" * 300_000, "headers": {"Content-Type": "application/json"}},
        "body",
    ),
    (Rejected.TOO_LARGE, {"json": {"events": [view("a")] * 101}}, "events"),
    (
        Rejected.UNSUPPORTED_MEDIA_TYPE,
        {"data": b"a=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        "Content-Type",
    ),
    (
        Rejected.ORIGIN,
        {"json": view("a"), "headers": {"Origin": "https://elsewhere.example"}},
        "Origin",
    ),
]


@pytest.mark.parametrize(
    ("reason", "request_options", "field"),
    REFUSED,
    ids=[f"{reason.value}-{field}" for reason, _, field in REFUSED],
)
async def test_each_refusal_has_its_status_field_and_one_count(
    client: Client, reason: Rejected, request_options: dict[str, Any], field: str
) -> None:
    response = await client.post(EVENTS, **request_options)

    body = await response.json()
    assert response.status == STATUS[reason], body
    assert body["detail"]["field"] == field, body
    assert rejections(client) == only(reason, 1.0)


async def redis_down_client(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis
) -> Client:
    return await make_client(settings.with_overrides(redis_url=own_redis.url))


async def test_redis_down_while_fetching_the_salt_is_counted_per_event(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis
) -> None:
    client = await redis_down_client(settings, make_client, own_redis)
    own_redis.stop()  # before any request: the day's salt is not cached yet

    response = await client.post(EVENTS, json={"events": [view("s1"), view("s2"), view("s3")]})

    body = await response.json()
    assert response.status == 503, body
    assert response.headers["Retry-After"] == str(settings.retry_after_s)
    assert body["detail"]["dependency"] == "redis"
    assert rejections(client) == only(Rejected.UNAVAILABLE, 3.0)


async def test_redis_down_while_recording_is_counted_per_event(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis
) -> None:
    client = await redis_down_client(settings, make_client, own_redis)
    assert (await client.post(EVENTS, json=view("r1"))).status == 202  # the salt is cached now
    own_redis.stop()

    response = await client.post(EVENTS, data=json.dumps({"events": [view("r1"), view("r2")]}))

    assert response.status == 503
    assert rejections(client) == only(Rejected.UNAVAILABLE, 2.0)
    assert sample(client, "tracker_events_accepted_total", type="view") == 1.0


async def test_refused_reads_count_no_events(client: Client) -> None:
    response = await client.get("/api/v1/articles/stats", params={"ids": "bad id"})

    assert response.status == 400
    assert (await response.json())["detail"]["field"] == "ids"
    assert rejections(client) == dict.fromkeys((r.value for r in Rejected), 0.0)
