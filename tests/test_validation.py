"""Bad input to the API: every SPEC error case answers JSON naming the field, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.helpers import BROWSER_UA, Client, sample, share, stats, view
from tracker.core.settings import Settings

EVENTS_URL = "/api/v1/events"
# A browser's agent, so no bot filter can drop what these tests post.
JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": BROWSER_UA}
MAX_BODY_BYTES = Settings().max_body_bytes
LONG_ID = "a" * 129


def outcomes(client: Client) -> dict[str, float]:
    """Accepted and rejected event counters, for one readable assertion."""
    counts = {
        f"accepted:{t}": sample(client, "tracker_events_accepted_total", type=t) or 0.0
        for t in ("view", "share")
    }
    for reason in ("invalid", "too_large", "unsupported_media_type", "unavailable"):
        counts[f"rejected:{reason}"] = (
            sample(client, "tracker_events_rejected_total", reason=reason) or 0.0
        )
    return counts


def expected_outcomes(**nonzero: float) -> dict[str, float]:
    counts = dict.fromkeys(
        [
            "accepted:view",
            "accepted:share",
            "rejected:invalid",
            "rejected:too_large",
            "rejected:unsupported_media_type",
            "rejected:unavailable",
        ],
        0.0,
    )
    counts.update({key.replace("__", ":"): value for key, value in nonzero.items()})
    return counts


async def post_body(
    client: Client, body: bytes, *, content_type: str | None = "application/json"
) -> ClientResponse:
    headers = {"User-Agent": BROWSER_UA}
    skip: list[str] = []
    if content_type is None:
        skip.append("Content-Type")
    else:
        headers["Content-Type"] = content_type
    return await client.post(EVENTS_URL, data=body, headers=headers, skip_auto_headers=skip)


async def post_json(client: Client, payload: Any) -> ClientResponse:
    return await post_body(client, json.dumps(payload).encode())


async def error_of(response: ClientResponse, status: int, error: str) -> dict[str, Any]:
    """Assert the status and the JSON error shape; return the `detail` object."""
    text = await response.text()
    assert response.status == status, f"{response.status} {text}"
    assert response.content_type == "application/json", text
    body = json.loads(text)
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == error, body
    detail: dict[str, Any] = body["detail"]
    assert isinstance(detail, dict), body
    assert isinstance(detail.get("message"), str), body
    assert detail["message"], body
    return detail


def padded(payload: Any, size: int) -> bytes:
    """Valid JSON of exactly `size` bytes (whitespace after the value)."""
    body = json.dumps(payload).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


INVALID_BODIES = [
    pytest.param(b"{", "body", id="malformed-json-truncated"),
    pytest.param(b"", "body", id="empty-body"),
    pytest.param(b"not json", "body", id="malformed-json-text"),
    pytest.param(b'{"type": "view", "article_id": "a",}', "body", id="trailing-comma"),
    pytest.param(b"\xff\xfe{}", "body", id="not-utf8-bytes"),
    pytest.param(b'{"type": "view", "article_id": "\xff"}', "body", id="not-utf8-inside-string"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "body", id="deeply-nested-arrays"),
    pytest.param(b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "body", id="deeply-nested-objects"),
    pytest.param(b"[]", "body", id="array"),
    pytest.param(b'[{"type": "view", "article_id": "a"}]', "body", id="array-of-events"),
    pytest.param(b'"view"', "body", id="string"),
    pytest.param(b"42", "body", id="number"),
    pytest.param(b"null", "body", id="null"),
    pytest.param(b"true", "body", id="boolean"),
]

INVALID_EVENTS = [
    # type
    pytest.param({"article_id": "a"}, "type", id="missing-type"),
    pytest.param({"type": "click", "article_id": "a"}, "type", id="unknown-type"),
    pytest.param({"type": "View", "article_id": "a"}, "type", id="type-wrong-case"),
    pytest.param({"type": None, "article_id": "a"}, "type", id="type-null"),
    pytest.param({"type": 1, "article_id": "a"}, "type", id="type-number"),
    # article_id
    pytest.param({"type": "view"}, "article_id", id="missing-article-id"),
    pytest.param(view(""), "article_id", id="article-id-empty"),
    pytest.param(view(LONG_ID), "article_id", id="article-id-129-chars"),
    pytest.param(view("a b"), "article_id", id="article-id-space"),
    pytest.param(view("a?b"), "article_id", id="article-id-question-mark"),
    pytest.param(view("статья"), "article_id", id="article-id-cyrillic"),
    pytest.param(view("café"), "article_id", id="article-id-accent"),
    pytest.param(view("abc\n"), "article_id", id="article-id-trailing-newline"),
    pytest.param(view("a\x00b"), "article_id", id="article-id-nul"),
    pytest.param({"type": "view", "article_id": 123}, "article_id", id="article-id-number"),
    pytest.param({"type": "view", "article_id": None}, "article_id", id="article-id-null"),
    # channel
    pytest.param({"type": "share", "article_id": "a"}, "channel", id="share-without-channel"),
    pytest.param(
        {"type": "share", "article_id": "a", "channel": None}, "channel", id="share-channel-null"
    ),
    pytest.param(share("a", "myspace"), "channel", id="unknown-channel"),
    pytest.param(share("a", "Telegram"), "channel", id="channel-wrong-case"),
    pytest.param(
        {"type": "share", "article_id": "a", "channel": 3}, "channel", id="channel-number"
    ),
    # optional metadata: bounded strings
    pytest.param(view("a", url="u" * 2049), "url", id="url-too-long"),
    pytest.param(view("a", url=5), "url", id="url-number"),
    pytest.param(view("a", referrer="r" * 2049), "referrer", id="referrer-too-long"),
    pytest.param(view("a", referrer=["x"]), "referrer", id="referrer-list"),
    pytest.param(view("a", title="t" * 513), "title", id="title-too-long"),
    pytest.param(view("a", title={"en": "x"}), "title", id="title-object"),
    pytest.param(view("a", title="a\x00b"), "title", id="title-with-nul"),
    pytest.param(view("a", category="c" * 129), "category", id="category-too-long"),
    pytest.param(view("a", category=True), "category", id="category-boolean"),
    pytest.param(view("a", lang="l" * 36), "lang", id="lang-too-long"),
    pytest.param(view("a", lang=7), "lang", id="lang-number"),
    pytest.param(view("a", author="w" * 257), "author", id="author-too-long"),
    pytest.param(view("a", author=["x", "y"]), "author", id="author-list"),
    # batches
    pytest.param({"events": "view"}, "events", id="events-string"),
    pytest.param({"events": {"type": "view"}}, "events", id="events-object"),
    pytest.param({"events": None}, "events", id="events-null"),
    pytest.param({"events": []}, "events", id="events-empty"),
    pytest.param(
        {"events": [view("a"), view("b"), {"type": "share", "article_id": "c"}]},
        "events[2].channel",
        id="batch-share-without-channel",
    ),
    pytest.param(
        {"events": [view("a"), {"article_id": "b"}]}, "events[1].type", id="batch-missing-type"
    ),
    pytest.param({"events": [view("a"), "view"]}, "events[1]", id="batch-item-not-object"),
    pytest.param(
        {"events": [view("a"), view("a b")]}, "events[1].article_id", id="batch-bad-article-id"
    ),
    pytest.param(
        {"events": [view("abc\n")]}, "events[0].article_id", id="batch-article-id-newline"
    ),
    pytest.param(
        {"events": [view("a"), view("b", title="t" * 513)]},
        "events[1].title",
        id="batch-title-too-long",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
async def test_unusable_body_is_400_naming_body(client: Client, body: bytes, field: str) -> None:
    response = await post_body(client, body)

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == field, detail
    assert outcomes(client) == expected_outcomes(rejected__invalid=1)


@pytest.mark.parametrize(("payload", "field"), INVALID_EVENTS)
async def test_invalid_event_is_400_naming_the_field(
    client: Client, payload: Any, field: str
) -> None:
    response = await post_json(client, payload)

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == field, detail
    assert outcomes(client) == expected_outcomes(rejected__invalid=1)


async def test_rejected_requests_are_counted_one_each(client: Client) -> None:
    for _ in range(3):
        assert (await post_json(client, view("a b"))).status == 400
    assert (await post_body(client, b"{", content_type="application/xml")).status == 415

    assert outcomes(client) == expected_outcomes(
        rejected__invalid=3, rejected__unsupported_media_type=1
    )


async def test_batch_with_one_bad_event_stores_nothing(client: Client) -> None:
    batch = {"events": [view("whole"), share("whole", "telegram"), view("whole", lang="x" * 36)]}

    response = await post_json(client, batch)

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == "events[2].lang"
    body = await stats(client, "whole")
    assert (body["views"], body["shares_total"]) == (0, 0), body
    assert outcomes(client) == expected_outcomes(rejected__invalid=1)
    await client.get("/metrics")
    assert sample(client, "tracker_pending_events") == 0


@pytest.mark.parametrize(
    "article_id",
    ["a", "a" * 128, "news/2026/06/budget-vote", "A-Z_a.z:0/9"],
    ids=["one-char", "128-chars", "path-like", "every-punctuation"],
)
async def test_valid_article_ids_are_accepted(client: Client, article_id: str) -> None:
    response = await post_json(client, view(article_id))

    assert response.status == 202, await response.text()
    assert (await stats(client, article_id))["views"] == 1


async def test_event_with_every_field_at_its_bound_is_accepted(client: Client) -> None:
    event = share(
        "bounds",
        "copy_link",
        url="u" * 2048,
        referrer="r" * 2048,
        title="t" * 512,
        category="c" * 128,
        lang="l" * 35,
        author="w" * 256,
    )

    response = await post_json(client, event)

    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 1}


async def test_batch_of_101_events_is_413_naming_events(client: Client) -> None:
    response = await post_json(client, {"events": [view(f"a{n}") for n in range(101)]})

    detail = await error_of(response, 413, "too_large")
    assert detail["field"] == "events"
    assert outcomes(client) == expected_outcomes(rejected__too_large=1)


async def test_batch_of_100_events_is_accepted(client: Client) -> None:
    response = await post_json(client, {"events": [view(f"a{n}") for n in range(100)]})

    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 100}
    assert outcomes(client) == expected_outcomes(accepted__view=100)


async def test_body_over_byte_limit_with_content_length_is_413(client: Client) -> None:
    body = padded(view("big"), MAX_BODY_BYTES + 1)

    response = await post_body(client, body)

    assert response.request_info.headers["Content-Length"] == str(MAX_BODY_BYTES + 1)
    detail = await error_of(response, 413, "too_large")
    assert detail["field"] == "body"
    assert outcomes(client) == expected_outcomes(rejected__too_large=1)


async def test_body_of_exactly_the_byte_limit_is_accepted(client: Client) -> None:
    response = await post_body(client, padded(view("edge"), MAX_BODY_BYTES))

    assert response.status == 202, await response.text()
    assert outcomes(client) == expected_outcomes(accepted__view=1)


async def test_chunked_body_over_byte_limit_is_413(client: Client) -> None:
    chunk = b" " * 16_384

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(view("chunked")).encode()
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk

    response = await client.post(EVENTS_URL, data=chunks(), headers=JSON_HEADERS)

    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request_info.headers
    detail = await error_of(response, 413, "too_large")
    assert detail["field"] == "body"
    assert outcomes(client) == expected_outcomes(rejected__too_large=1)
    assert (await stats(client, "chunked"))["views"] == 0


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/xml",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ],
    ids=["missing", "xml", "multipart", "form-urlencoded", "octet-stream"],
)
async def test_wrong_content_type_is_415_naming_content_type(
    client: Client, content_type: str | None
) -> None:
    response = await post_body(client, json.dumps(view("ct")).encode(), content_type=content_type)

    if content_type is None:
        assert "Content-Type" not in response.request_info.headers
    detail = await error_of(response, 415, "unsupported_media_type")
    assert detail["field"] == "Content-Type"
    assert outcomes(client) == expected_outcomes(rejected__unsupported_media_type=1)
    assert (await stats(client, "ct"))["views"] == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain;charset=UTF-8",  # what navigator.sendBeacon sends with a string
        "text/plain",
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ],
    ids=["sendbeacon", "text-plain", "json", "json-charset", "json-any-case"],
)
async def test_json_or_text_plain_body_is_accepted_and_counted(
    client: Client, content_type: str
) -> None:
    response = await post_body(
        client, json.dumps(view("beacon")).encode(), content_type=content_type
    )

    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 1}
    assert (await stats(client, "beacon"))["views"] == 1
    assert outcomes(client) == expected_outcomes(accepted__view=1)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({}, id="no-ids"),
        pytest.param({"ids": ""}, id="empty-ids"),
        pytest.param({"ids": " "}, id="blank-ids"),
        pytest.param({"ids": ",,"}, id="only-commas"),
        pytest.param({"ids": ",".join(f"a{n}" for n in range(101))}, id="101-ids"),
        pytest.param({"ids": "a,b c"}, id="id-with-space"),
        pytest.param({"ids": "a,b?c"}, id="id-with-question-mark"),
        pytest.param({"ids": "a,café"}, id="id-with-unicode"),
        pytest.param({"ids": "a," + LONG_ID}, id="id-129-chars"),
    ],
)
async def test_batch_stats_with_bad_ids_is_400_naming_ids(
    client: Client, query: dict[str, str]
) -> None:
    response = await client.get("/api/v1/articles/stats", params=query)

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == "ids"


async def test_batch_stats_takes_up_to_100_ids(client: Client) -> None:
    ids = [f"a{n}" for n in range(100)]

    response = await client.get("/api/v1/articles/stats", params={"ids": ",".join(ids)})

    assert response.status == 200, await response.text()
    assert [a["article_id"] for a in (await response.json())["articles"]] == ids


@pytest.mark.parametrize(
    "raw_id",
    ["a%20b", "a%3Fb", "caf%C3%A9", "abc%0A", "a%00b", LONG_ID],
    ids=["space", "question-mark", "unicode", "trailing-newline", "nul", "129-chars"],
)
async def test_article_stats_with_bad_id_is_400_naming_article_id(
    client: Client, raw_id: str
) -> None:
    response = await client.get(f"/api/v1/articles/{raw_id}/stats")

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == "article_id"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/api/v1/event"), ("POST", "/api/v2/events"), ("GET", "/")],
)
async def test_unknown_route_is_404_json(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)

    await error_of(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/events", "POST"),
        ("PUT", "/api/v1/events", "POST"),
        ("POST", "/api/v1/articles/a/stats", "GET"),
        ("DELETE", "/metrics", "GET"),
    ],
)
async def test_wrong_method_is_405_json_with_allow(
    client: Client, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)

    await error_of(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"].split(","), response.headers


async def test_body_not_in_its_content_encoding_is_400_naming_body(client: Client) -> None:
    response = await client.post(
        EVENTS_URL, data=b"not gzip at all", headers={**JSON_HEADERS, "Content-Encoding": "gzip"}
    )

    detail = await error_of(response, 400, "invalid")
    assert detail["field"] == "body"
    assert outcomes(client) == expected_outcomes(rejected__invalid=1)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({"Content-Encoding": "br-unknown"}, b"{}", id="unknown-encoding"),
        pytest.param(
            {}, b'{"type": "view", "article_id": "a", "x": 1' + b"0" * 400 + b"}", id="huge-int"
        ),
        pytest.param(
            {}, b'{"type": "view", "article_id": "a", "url": "\\ud800"}', id="lone-surrogate"
        ),
        pytest.param({}, b'{"type": "view", "article_id": "a"}{}', id="trailing-data"),
        pytest.param({"Content-Type": "application/json; charset=utf-16"}, b"{}", id="odd-charset"),
        pytest.param({"Content-Type": "application/json; ==="}, b"{}", id="garbled-content-type"),
    ],
)
async def test_hostile_requests_never_yield_a_500(
    client: Client, headers: dict[str, str], body: bytes
) -> None:
    response = await client.post(EVENTS_URL, data=body, headers={**JSON_HEADERS, **headers})

    text = await response.text()
    assert response.status < 500, f"{response.status} {text}"
    if response.status >= 400:
        assert response.content_type == "application/json", text
        assert set(json.loads(text)) == {"error", "detail"}, text
