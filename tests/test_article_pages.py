"""Article metadata read from the article's own page on the site's origin, as Parse.ly's
crawler does: taken only when the page declares the same article id; only the site's
origins (no redirect off them), a body cap, a timeout, a queue that drops and counts;
read again when older than TRACKER_METADATA_REFRESH while the article is still read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import wait_until
from tests.helpers import MakeClient, flush, post_events, sample, view
from tracker.core.metadata import PageOutcome
from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.pages.declared import read_page
from tracker.pages.reader import QUEUE_LIMIT, PageFetcher, PageReader
from tracker.web.app_keys import SERVICES

ARTICLE = "2026/11/budget-vote"
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


def article_page(article_id: str, headline: str = "Budget vote passes", **extra: str) -> str:
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "name": "ignored"},
            {
                "@type": "NewsArticle",
                "headline": headline,
                "articleSection": ["Politics", "Economy"],
                "author": [{"@type": "Person", "name": "M. Keller"}, {"name": "A. Diaz"}],
                "inLanguage": "en",
                "datePublished": "2026-11-30T07:15:00+01:00",
            },
        ],
    }
    attributes = " ".join(f'data-{k}="{v}"' for k, v in extra.items())
    return f"""<!doctype html><html lang="de"><head>
<title>{headline} | News</title>
<link rel="canonical" href="/{ARTICLE}">
<meta property="og:title" content="OG {headline}">
<meta property="article:section" content="OG section">
<script type="application/ld+json">{json.dumps(ld)}</script>
<script defer src="/tracker.js" data-article="{article_id}" {attributes}></script>
</head><body><h1>{headline}</h1></body></html>"""


class Site:
    """The news site's pages, served on loopback."""

    def __init__(self) -> None:
        self.headline = "Budget vote passes"
        self.fetched: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/{path:.*}", self.page)

    async def page(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.fetched.append(path)
        if path == ARTICLE:
            return web.Response(text=article_page(ARTICLE, self.headline), content_type="text/html")
        if path == "other":
            return web.Response(text=article_page("2026/11/other"), content_type="text/html")
        if path == "no-id":
            return web.Response(text="<html><title>Home</title></html>", content_type="text/html")
        if path == "to-article":
            raise web.HTTPFound(f"/{ARTICLE}")
        if path == "off-site":
            raise web.HTTPFound("http://198.51.100.1/phish")
        if path == "huge":
            return web.Response(body=b"<html>" + b" " * (2 << 20), content_type="text/html")
        if path == "slow":
            await asyncio.sleep(2)
            return web.Response(text=article_page(ARTICLE), content_type="text/html")
        if path == "json":
            return web.json_response({"title": "x"})
        raise web.HTTPNotFound()


@pytest.fixture
async def site(aiohttp_server: AiohttpServer) -> tuple[Site, str]:
    pages = Site()
    server = await aiohttp_server(pages.app)
    return pages, str(server.make_url("")).rstrip("/")


def test_the_page_parser_prefers_trackers_attributes_then_json_ld_then_open_graph() -> None:
    html = article_page(ARTICLE, category="World")
    declared = read_page(
        html, f"https://news.example/{ARTICLE}", frozenset({"https://news.example"})
    )
    assert declared.article_ids == {ARTICLE}
    meta = declared.meta
    assert meta.title == "Budget vote passes"  # JSON-LD's headline, before og:title
    assert meta.category == "World"  # tracker.js's data-category, before articleSection
    assert meta.author == "M. Keller, A. Diaz"
    assert meta.lang == "en"  # JSON-LD's inLanguage, before <html lang>
    assert meta.url == f"https://news.example/{ARTICLE}"  # the canonical link, resolved
    assert meta.published is not None
    assert meta.published.isoformat() == "2026-11-30T06:15:00+00:00"


def test_the_page_parser_ignores_a_canonical_link_off_the_site_and_cuts_long_text() -> None:
    html = article_page(ARTICLE, headline="H" * 2000).replace(
        f'href="/{ARTICLE}"', 'href="https://evil.example/x"'
    )
    declared = read_page(
        html, f"https://news.example/{ARTICLE}", frozenset({"https://news.example"})
    )
    assert declared.meta.url == f"https://news.example/{ARTICLE}"
    assert declared.meta.title == "H" * 512


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        (ARTICLE, PageOutcome.VERIFIED),
        ("to-article", PageOutcome.VERIFIED),  # a redirect within the site is followed
        ("other", PageOutcome.MISMATCH),  # the page is another article's
        ("no-id", PageOutcome.MISMATCH),
        ("off-site", PageOutcome.OFF_SITE),
        ("huge", PageOutcome.TOO_LARGE),
        ("slow", PageOutcome.TIMEOUT),
        ("json", PageOutcome.NOT_HTML),
        ("missing", PageOutcome.HTTP_ERROR),
    ],
)
async def test_a_page_is_taken_only_when_it_declares_the_article(
    settings: Settings,
    make_client: MakeClient,
    site: tuple[Site, str],
    path: str,
    outcome: PageOutcome,
) -> None:
    _, origin = site
    client = await make_client(settings.with_overrides(site_origins=(origin,)))
    assert await post_events(client, view(ARTICLE, title="FORGED")) == 202
    pool = client.app[SERVICES].pool
    await flush(client)
    async with aiohttp.ClientSession() as session:
        fetcher = PageFetcher(session, frozenset({origin}), timeout_s=0.5)
        reader = PageReader(pool, fetcher, Metrics(), refresh_s=3600)
        got = await reader.read(ARTICLE, f"{origin}/{path}")

    row = await pool.fetchrow(
        "SELECT title, verified, page_outcome FROM articles WHERE article_id = $1", ARTICLE
    )
    assert got is outcome
    assert row["page_outcome"] == str(outcome)
    if outcome is PageOutcome.VERIFIED:
        assert (row["title"], row["verified"]) == ("Budget vote passes", True)
    else:
        assert (row["title"], row["verified"]) == ("FORGED", False)  # the claim, as it was


async def test_counted_events_naming_the_page_get_it_read_and_a_corrected_headline_shows(
    settings: Settings, make_client: MakeClient, site: tuple[Site, str]
) -> None:
    pages, origin = site
    client = await make_client(
        settings.with_overrides(site_origins=(origin,), metadata_refresh_s=60),
        run_flusher=True,
    )
    pool = client.app[SERVICES].pool
    url = f"{origin}/{ARTICLE}?utm_source=newsletter&session=secret"
    assert await post_events(client, view(ARTICLE, title="FORGED", url=url)) == 202

    async def titled(title: str) -> bool:
        row = await pool.fetchrow("SELECT title FROM articles WHERE article_id = $1", ARTICLE)
        return row is not None and row["title"] == title

    async def verified_fetches() -> float:
        return sample(client, "tracker_metadata_fetches_total", outcome="verified") or 0.0

    async def counted() -> bool:
        # The metric follows the row's write: wait for both.
        return await titled("Budget vote passes") and await verified_fetches() == 1

    await wait_until(counted, timeout_s=10)
    assert pages.fetched == [ARTICLE]  # query parameters are not passed on

    # Read again only once older than the refresh interval, while still read.
    pages.headline = "Budget vote passes narrowly"
    assert await post_events(client, view(ARTICLE, url=url)) == 202
    await asyncio.sleep(1.0)
    assert pages.fetched == [ARTICLE]
    await pool.execute("UPDATE articles SET page_checked_at = now() - interval '2 minutes'")
    assert await post_events(client, view(ARTICLE, url=url)) == 202
    await wait_until(lambda: titled("Budget vote passes narrowly"), timeout_s=10)


async def test_the_queue_drops_and_counts_what_it_cannot_hold(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings)
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        reader = PageReader(
            client.app[SERVICES].pool, PageFetcher(session, frozenset()), metrics, refresh_s=3600
        )
        reader.offer({f"a/{n}": n for n in range(QUEUE_LIMIT + 25)})
    dropped = metrics.registry.get_sample_value(
        "tracker_metadata_fetches_total", {"outcome": "dropped"}
    )
    assert dropped == 25
