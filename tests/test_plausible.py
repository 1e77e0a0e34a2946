"""Plausible's Events API (`POST /api/event`): the payloads Plausible's script, its npm
package and server-side clients send, counted through tracker's own rules and read back
from tracker's own stats endpoint (real Redis and PostgreSQL)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.helpers import BROWSER_UA, Client, MakeClient, flush, sample, stats
from tracker.core.settings import Settings
from tracker.events.plausible import PAGE_URL_PATTERN, _host_of

NEWS = "https://news.example"
ARTICLE = "2026/11/budget-vote"
PAGE = f"{NEWS}/{ARTICLE}"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# What Plausible's script (v36, the npm package's) sends on a page load: text/plain.
SCRIPT_PAGEVIEW: dict[str, Any] = {
    "n": "pageview",
    "v": 36,
    "u": f"{PAGE}?utm_source=telegram&session=secret",
    "d": "news.example",
    "r": "https://t.me/",
    "p": {"article_id": ARTICLE, "title": "Budget vote", "category": "politics", "lang": "en"},
}
PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.fixture
async def news(settings: Settings, make_client: MakeClient) -> Client:
    return await make_client(settings.with_overrides(allowed_origins=(NEWS,)))


async def send(
    client: Client, body: dict[str, Any] | str, *, content_type: str = "text/plain", **headers: str
) -> ClientResponse:
    data = body if isinstance(body, str) else json.dumps(body)
    return await client.post(
        "/api/event", data=data, headers={"Content-Type": content_type, **headers}
    )


async def accepted(client: Client, body: dict[str, Any] | str, **headers: str) -> None:
    response = await send(client, body, **headers)
    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 1}


def pageview(url: str = PAGE, **extra: Any) -> dict[str, Any]:
    return {"n": "pageview", "v": 36, "u": url, "d": "news.example", "r": None, **extra}


def ignored(client: Client, reason: str) -> float | None:
    return sample(client, "tracker_events_ignored_total", reason=reason)


# --- What counts --------------------------------------------------------------------


async def test_script_pageview_counts_a_view_with_its_referral_and_metadata(
    settings: Settings, make_client: MakeClient
) -> None:
    # A trusted sender's props are the article's metadata (otherwise a claim, which the
    # public list does not show).
    news = await make_client(
        settings.with_overrides(allowed_origins=(NEWS,), trust_event_metadata=True)
    )
    await accepted(news, SCRIPT_PAGEVIEW, Origin=NEWS)

    counts = await stats(news, ARTICLE)
    assert (counts["views"], counts["uniques"]) == (1, 1), counts
    assert counts["referrals"]["telegram"] == 1, counts["referrals"]
    assert sample(news, "tracker_events_accepted_total", type="view") == 1

    await flush(news)
    response = await news.get(
        "/api/v1/popular", params={"period": "24h", "category": "politics", "lang": "en"}
    )
    (row,) = (await response.json())["articles"]
    # Only the origin, the path and utm_* of the page's URL are kept.
    assert row == {
        "article_id": ARTICLE,
        "title": "Budget vote",
        "url": f"{PAGE}?utm_source=telegram",
        "views": 1,
    }


async def test_server_side_event_counts_the_forwarded_readers_once_each(
    settings: Settings, make_client: MakeClient
) -> None:
    """Plausible's Events API as its docs show it: long names, JSON, the reader's
    User-Agent and X-Forwarded-For, here from a trusted proxy."""
    client = await make_client(
        settings.with_overrides(allowed_origins=(NEWS,), trusted_proxies=PROXY, dedup_window_s=1800)
    )
    body = {"name": "pageview", "url": PAGE, "domain": "news.example", "referrer": None}
    for reader in ("203.0.113.7", "198.51.100.20", "203.0.113.7"):
        response = await send(
            client,
            body,
            content_type="application/json",
            **{"User-Agent": BROWSER_UA, "X-Forwarded-For": reader},
        )
        assert response.status == 202, await response.text()

    counts = await stats(client, ARTICLE)
    assert (counts["views"], counts["uniques"]) == (2, 2), counts
    assert ignored(client, "duplicate") == 1


async def test_props_sent_as_a_json_string_are_read(news: Client) -> None:
    props = json.dumps({"article_id": "older-script", "author": "M. Keller"})
    await accepted(news, pageview(f"{NEWS}/elsewhere", p=props))
    await accepted(news, pageview(f"{NEWS}/elsewhere", m=props))  # older scripts: meta

    assert (await stats(news, "older-script"))["views"] == 2


@pytest.mark.parametrize(
    ("name", "props", "channel"),
    [
        ("Share", {"channel": "telegram"}, "telegram"),
        ("share", {"channel": "WhatsApp"}, "whatsapp"),
        ("Share", {"method": "copy_link"}, "copy_link"),
        ("Share", {"channel": "facebook", "method": "print"}, "facebook"),
    ],
)
async def test_share_event_with_a_channel_counts_a_share(
    news: Client, name: str, props: dict[str, str], channel: str
) -> None:
    await accepted(news, {"n": name, "u": PAGE, "d": "news.example", "p": props})

    counts = await stats(news, ARTICLE)
    assert counts["shares"][channel] == 1, counts["shares"]
    assert (counts["shares_total"], counts["views"]) == (1, 0), counts


async def test_share_event_names_come_from_the_setting(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(
            allowed_origins=(NEWS,), plausible_share_events=("Shared", "Social Share")
        )
    )
    for name in ("Shared", "social share", "Share"):
        await accepted(client, pageview(n=name, p={"channel": "vk"}))

    assert (await stats(client, ARTICLE))["shares"]["vk"] == 2
    assert ignored(client, "not_counted") == 1  # "Share" is not one of them here


async def test_engagement_is_acknowledged_and_not_counted(news: Client) -> None:
    engagement = {"n": "engagement", "sd": 64, "e": 5120, "u": PAGE, "d": "news.example", "v": 36}
    await accepted(news, engagement, Origin=NEWS)

    counts = await stats(news, ARTICLE)
    assert (counts["views"], counts["shares_total"]) == (0, 0), counts
    assert ignored(news, "not_counted") == 1
    assert sample(news, "tracker_events_accepted_total", type="view") == 0


async def test_other_custom_event_is_acknowledged_and_not_counted(news: Client) -> None:
    signup = {"n": "Signup", "u": PAGE, "d": "news.example", "p": {"tier": "free"}, "i": False}
    await accepted(news, signup)
    outbound = {"n": "Outbound Link: Click", "u": PAGE, "d": "news.example"}
    await accepted(news, {**outbound, "p": {"url": "https://t.me/share"}})

    assert (await stats(news, ARTICLE))["views"] == 0
    assert ignored(news, "not_counted") == 2


async def test_zero_not_counted_series_exists_before_the_first_event(client: Client) -> None:
    assert ignored(client, "not_counted") == 0


# --- The article id -----------------------------------------------------------------


async def test_article_id_prop_wins_over_the_url(news: Client) -> None:
    await accepted(news, pageview(f"{NEWS}/amp/some-slug", p={"article_id": "cms:4711"}))
    await accepted(news, pageview(f"{NEWS}/amp/some-slug", props={"article_id": 4712}))
    # An empty prop is no prop, as Plausible drops it: the URL's path is the id then.
    await accepted(news, pageview(f"{NEWS}/{ARTICLE}", p={"article_id": ""}))

    assert (await stats(news, "cms:4711"))["views"] == 1
    assert (await stats(news, "4712"))["views"] == 1
    assert (await stats(news, ARTICLE))["views"] == 1
    assert (await stats(news, "amp/some-slug"))["views"] == 0


async def test_article_id_from_the_url_path_by_default(news: Client) -> None:
    await accepted(news, pageview(f"{NEWS}/{ARTICLE}/?utm_source=x#comments"))
    await accepted(news, pageview(f"{NEWS}//{ARTICLE}"))
    await accepted(news, pageview(f"{NEWS}/"))  # the home page: no article

    assert (await stats(news, ARTICLE))["views"] == 2
    assert ignored(news, "not_counted") == 1


async def test_article_id_from_the_url_by_a_configured_expression(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(
            allowed_origins=(NEWS,), article_id_from_url=r"^/news/(\d+)(?:-[a-z-]*)?/?$"
        )
    )
    await accepted(client, pageview(f"{NEWS}/news/4711-budget-vote"))
    await accepted(client, pageview(f"{NEWS}/news/4711/"))
    await accepted(client, pageview(f"{NEWS}/about"))  # no match: not an article

    assert (await stats(client, "4711"))["views"] == 2
    assert ignored(client, "not_counted") == 1


# --- Who may send -------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "evil.example",
        "news.example,evil.example",
        "news.example.evil.example",
        # Not blank by the document's pattern: a name, and not an allowed one.
        "\u00a0",
    ],
)
async def test_domain_not_allowed_is_refused_like_an_origin(news: Client, domain: str) -> None:
    response = await send(news, pageview(d=domain))

    assert response.status == 403, await response.text()
    body = await response.json()
    assert (body["error"], body["detail"]["field"]) == ("origin_not_allowed", "domain")
    assert sample(news, "tracker_events_rejected_total", reason="origin") == 1
    assert (await stats(news, ARTICLE))["views"] == 0


@pytest.mark.parametrize(
    ("origins", "domain"),
    [
        ((NEWS,), "news.example"),
        ((NEWS,), "WWW.News.Example"),
        (("http://news.example:8443", "https://other.example"), "other.example,news.example"),
        (("https://www.news.example",), "news.example"),
        (("*",), "news.example,anything.example"),
    ],
)
async def test_domains_of_the_allowed_origins_are_accepted(
    settings: Settings, make_client: MakeClient, origins: tuple[str, ...], domain: str
) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=origins))
    await accepted(client, pageview(d=domain))

    assert (await stats(client, ARTICLE))["views"] == 1


@pytest.mark.parametrize(
    ("domain", "url", "field"),
    [
        # The Host header names no domain: only configuration does (before, `Host: evil`
        # with `"d": "evil"` passed).
        ("evil.example", "https://evil.example/" + ARTICLE, "domain"),
        # An allowed domain does not vouch for a page elsewhere.
        ("news.example", "https://evil.example/" + ARTICLE, "url"),
    ],
)
async def test_domains_come_from_configuration_and_the_page_must_be_on_one(
    news: Client, domain: str, url: str, field: str
) -> None:
    response = await send(news, pageview(url, d=domain), Host=domain)

    assert response.status == 403, await response.text()
    assert (await response.json())["detail"]["field"] == field
    assert (await stats(news, ARTICLE))["views"] == 0


async def test_without_a_domain_the_pages_host_is_checked(news: Client) -> None:
    body = {"name": "pageview", "url": PAGE}
    await accepted(news, body)
    response = await send(news, {**body, "url": "https://evil.example/" + ARTICLE})

    assert response.status == 403
    assert (await stats(news, ARTICLE))["views"] == 1


async def test_cors_of_the_script_on_another_origin(news: Client) -> None:
    preflight = await news.options(
        "/api/event",
        headers={"Origin": NEWS, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == NEWS

    response = await send(news, SCRIPT_PAGEVIEW, Origin=NEWS)
    assert response.status == 202
    assert response.headers["Access-Control-Allow-Origin"] == NEWS

    refused = await send(news, SCRIPT_PAGEVIEW, Origin="https://evil.example")
    assert refused.status == 403
    assert (await refused.json())["detail"]["field"] == "Origin"
    assert sample(news, "tracker_events_rejected_total", reason="origin") == 1
    assert (await stats(news, ARTICLE))["views"] == 1


# --- What does not count ------------------------------------------------------------


async def test_bot_is_acknowledged_and_not_counted(news: Client) -> None:
    await accepted(news, SCRIPT_PAGEVIEW, **{"User-Agent": GOOGLEBOT})

    assert (await stats(news, ARTICLE))["views"] == 0
    assert ignored(news, "crawler") == 1


async def test_do_not_track_is_honoured_when_asked(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=(NEWS,), respect_dnt=True))
    await accepted(client, SCRIPT_PAGEVIEW, DNT="1")

    assert (await stats(client, ARTICLE))["views"] == 0
    assert ignored(client, "dnt") == 1


# --- Refusals name the field --------------------------------------------------------

BAD_INPUTS: list[tuple[str, dict[str, Any] | str, str]] = [
    ("malformed JSON", '{"n": "pageview", "u": ', "body"),
    ("not an object", '["pageview"]', "body"),
    ("no url", {"n": "pageview", "d": "news.example"}, "url"),
    ("no name", {"u": PAGE, "d": "news.example"}, "name"),
    ("null name", pageview(n=None), "name"),
    ("null domain", pageview(d=None), "domain"),
    ("url not a string", pageview(u=42), "url"),
    ("url not http", pageview(u="javascript:alert(1)"), "url"),
    ("blank domain", pageview(d=" "), "domain"),
    # Blank as the OpenAPI document's pattern says it (ECMA-262, where \s is not \x1f).
    ("control-character domain", pageview(d="\x1f, \t"), "domain"),
    ("id in the url breaks the rule", pageview(f"{NEWS}/2026/budget%20vote"), "url"),
    ("id too long", pageview(f"{NEWS}/{'a' * 129}"), "url"),
    ("bad id prop", pageview(p={"article_id": "a b"}), "props.article_id"),
    ("id prop not text", pageview(p={"article_id": ["a"]}), "props.article_id"),
    ("props not JSON", pageview(p="{not json"), "props"),
    ("props a number", pageview(p=7), "props"),
    ("too many props", pageview(p={f"k{i}": "v" for i in range(31)}), "props"),
    ("title too long", pageview(p={"title": "t" * 513}), "props.title"),
    ("share without channel", pageview(n="Share"), "props.channel"),
    ("unknown channel", pageview(n="Share", p={"channel": "myspace"}), "props.channel"),
    ("referrer not a string", pageview(r=1), "referrer"),
]


@pytest.mark.parametrize(
    ("body", "field"), [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS]
)
async def test_bad_input_is_400_naming_the_field(
    news: Client, body: dict[str, Any] | str, field: str
) -> None:
    response = await send(news, body)

    assert response.status == 400, await response.text()
    answer = await response.json()
    assert (answer["error"], answer["detail"]["field"]) == ("invalid", field), answer
    assert sample(news, "tracker_events_rejected_total", reason="invalid") == 1
    assert (await stats(news, ARTICLE))["views"] == 0


async def test_content_type_and_size_are_checked_as_for_tracker_events(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(allowed_origins=(NEWS,)))

    form = await send(client, SCRIPT_PAGEVIEW, content_type="application/x-www-form-urlencoded")
    assert form.status == 415
    large = pageview(p={"title": "x" * 300_000})
    assert (await send(client, large)).status == 413
    assert sample(client, "tracker_events_rejected_total", reason="too_large") == 1


@pytest.mark.parametrize(
    ("url", "admitted"),
    [
        ("https://news.example/politics/a-1", True),
        ("HTTp://reader:secret@news.example:8443/a?b#c", True),
        # What fuzzing found: a bracket in the user part, which urlsplit refuses.
        ("HTTp://\u009d\u0003\u00bc[@NEX+f01;*KW-30;$v8Vb0:49/", False),
        ("http://\uff03x@news.example/a", False),  # NFKC folds the fullwidth # into one
        ("http://news.example\uff0fa", False),
        ("ftp://news.example/a", False),
    ],
)
def test_a_url_the_schema_admits_has_a_host(url: str, admitted: bool) -> None:
    """The schema's pattern is the decoder's: what it admits, urlsplit reads with a host."""
    assert bool(re.search(PAGE_URL_PATTERN, url)) is admitted
    if admitted:
        assert _host_of(url)
