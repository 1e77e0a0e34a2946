"""The editors' /reports page, its login form and the site's "most read" box, in real
headless Chromium (Debian's, driven by Playwright) against the app on a loopback port.

Every page is watched for console errors, uncaught exceptions and Content-Security-Policy
violations: the pages must work under their strict policy (no inline code or styles).
Requests to anything but loopback are aborted, and fail the test.

Chromium comes from apt, never from `playwright install`; without it these tests are
skipped on a workstation and fail in CI (see test_browser.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
)

from tests.helpers import BROWSER_UA, Client
from tests.test_browser import LOOPBACK, TIMEOUT_MS, screenshot_path
from tracker.core.metadata import ArticleMeta, Source
from tracker.core.settings import Settings
from tracker.pg import metadata_store
from tracker.pg.auth import Tokens
from tracker.web.app import create_app
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

AiohttpServer = Callable[..., Awaitable[TestServer]]
AiohttpClient = Callable[..., Awaitable[Client]]

PHONE = {"width": 390, "height": 844}
# Every CSP violation a page sees, sent to the test through a binding (it outlives
# navigations, unlike anything kept in the page).
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.reportCspViolation(e.violatedDirective + " " + e.blockedURI);
});
"""


@dataclass(frozen=True)
class Article:
    article_id: str
    title: str | None
    category: str
    author: str
    views: int
    shares: dict[str, int] = field(default_factory=dict)
    url: str | None = None

    @property
    def link(self) -> str:
        return self.url or f"https://news.example/{self.article_id}"

    @property
    def name(self) -> str:
        """What a table or list shows for it."""
        return self.title or self.article_id

    def events(self) -> list[dict[str, Any]]:
        meta: dict[str, Any] = {
            "article_id": self.article_id,
            "url": self.link,
            "category": self.category,
            "author": self.author,
            "lang": "en",
        }
        if self.title:
            meta["title"] = self.title
        views = [{"type": "view", **meta}] * self.views
        shares = [
            {"type": "share", "channel": channel, **meta}
            for channel, n in self.shares.items()
            for _ in range(n)
        ]
        return views + shares


BUDGET = Article(
    "2026/11/budget-vote",
    "Why the budget vote split the coalition",
    "politics",
    "Maria Keller",
    views=9,
    shares={"telegram": 1},
)
# A url no page may link: whoever sends events decides what is stored.
NOT_A_LINK = Article(
    "2026/11/not-a-link",
    "A story with a script for a url",
    "politics",
    "Mallory",
    views=8,
    url="javascript:alert(document.domain)",
)
DERBY = Article(
    "2026/11/derby",
    "Derby ends in a late draw",
    "sport",
    "Tom Ruiz",
    views=7,
    shares={"whatsapp": 4, "telegram": 1},
)
# Markup in a title is text, shown as it is.
MARKETS = Article(
    "2026/11/markets", 'Markets <em>rally</em> & "fall"', "economy", "Ana Lind", views=5
)
UNTITLED = Article(
    "2026/11/untitled", None, "politics", "Maria Keller", views=3, shares={"telegram": 2}
)
ARTICLES = (BUDGET, NOT_A_LINK, DERBY, MARKETS, UNTITLED)  # most viewed first


@dataclass
class Tracker:
    base: str
    client: Client  # the same server, for seeding and the API

    @property
    def app(self) -> web.Application:
        return self.client.app


async def start_tracker(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, settings: Settings
) -> Tracker:
    server = await aiohttp_server(create_app(settings, run_flusher=False), host="127.0.0.1")
    client = await aiohttp_client(server, headers={"User-Agent": BROWSER_UA})
    return Tracker(str(server.make_url("")).rstrip("/"), client)


async def seed(tracker: Tracker, *articles: Article) -> None:
    """Events as pages send them, then a flush: PostgreSQL knows the articles (and when
    they were published, which take-off curves start from)."""
    events = [event for article in articles for event in article.events()]
    response = await tracker.client.post("/api/v1/events", json={"events": events})
    assert response.status == 202, await response.text()
    await tracker.app[SERVICES].flusher.flush_once()


async def claimed_only(tracker: Tracker, article_id: str) -> None:
    """The article's metadata as if only an anonymous event had claimed it."""
    async with tracker.app[SERVICES].pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "DELETE FROM article_sources WHERE article_id = $1 RETURNING title, category, author",
            article_id,
        )
        claim = ArticleMeta(title=row["title"], category=row["category"], author=row["author"])
        await metadata_store.write(conn, {article_id: claim}, Source.CLAIM)


@dataclass
class Watch:
    """What went wrong in the browser, and what it asked for."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    def on_csp_violation(self, text: str) -> None:
        self.csp_violations.append(text)

    def on_page(self, page: Page) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    async def route(self, route: Route, request: Request) -> None:
        if (urlsplit(request.url).hostname or "") in LOOPBACK:
            await route.continue_()
        else:
            self.blocked.append(request.url)
            await route.abort("blockedbyclient")

    def paths(self, path: str) -> list[str]:
        return [r.url for r in self.requests if urlsplit(r.url).path == path]

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.csp_violations == []
        assert self.blocked == []


async def new_context(browser: Browser, watch: Watch) -> BrowserContext:
    context = await browser.new_context(
        user_agent=BROWSER_UA, locale="en-US", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    await context.expose_function("reportCspViolation", watch.on_csp_violation)
    await context.add_init_script(CSP_WATCH)
    await context.route("**/*", watch.route)
    context.on("page", watch.on_page)
    context.on("request", watch.on_request)
    return context


async def keys(page: Page, table: str) -> list[str]:
    found: list[str] = await page.locator(f"{table} tbody tr[data-key]").evaluate_all(
        "rows => rows.map(row => row.dataset.key)"
    )
    return found


async def wait_for_keys(page: Page, table: str, expected: list[str]) -> None:
    """Until the table's rows are those articles, in that order."""
    try:
        await page.wait_for_function(
            """([table, expected]) => JSON.stringify(
                 [...document.querySelectorAll(table + ' tbody tr[data-key]')]
                   .map(row => row.dataset.key)) === JSON.stringify(expected)""",
            arg=[table, expected],
        )
    except Exception:
        print("rows:", await keys(page, table))
        raise


async def series(page: Page, figure: str) -> list[list[int]]:
    """The values of each curve drawn in a figure's SVG, point by point."""
    found: list[list[int]] = await page.locator(f"{figure} svg g.series").evaluate_all(
        "groups => groups.map(g => [...g.querySelectorAll('circle.point')]"
        ".map(p => Number(p.dataset.value)))"
    )
    return found


async def wait_for_series(page: Page, figure: str, totals: list[int], points: int) -> None:
    """Until the figure holds one curve per total, each of `points` points summing to it."""

    async def drawn() -> bool:
        curves = await series(page, figure)
        return [sum(c) for c in curves] == totals and all(len(c) == points for c in curves)

    deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
    while not await drawn():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{figure}: {await series(page, figure)}, expected {totals} x {points}")
        await asyncio.sleep(0.05)


async def log_in(page: Page, base: str, token: str) -> None:
    response = await page.goto(f"{base}/reports")
    assert response is not None
    assert page.url == f"{base}/reports/login"  # no cookie yet: sent to the form
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/reports")


async def test_reports_page(
    settings: Settings,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    browser: Browser,
) -> None:
    # The seeding events stand for the newsroom's own sender (metadata verified), but for
    # one article whose metadata is an anonymous event's claim.
    trusted = settings.with_overrides(trust_event_metadata=True)
    tracker = await start_tracker(aiohttp_server, aiohttp_client, trusted)
    await seed(tracker, *ARTICLES)
    await claimed_only(tracker, DERBY.article_id)
    token = await Tokens(tracker.app[SERVICES].pool).create("editor")
    base = tracker.base
    watch = Watch()
    context = await new_context(browser, watch)
    page = await context.new_page()
    # A clock the test can move: the trending panel refreshes every 30 s.
    await page.clock.install()

    await log_in(page, base, token)
    table, trending = "#popular-table", "#trending-table"
    by_views = [a.article_id for a in ARTICLES]
    await wait_for_keys(page, table, by_views)

    # What each row shows: the title as text (markup and all), linked only to web pages.
    rows = page.locator(f"{table} tbody tr")
    first = rows.nth(0).locator("td")
    assert await first.nth(0).text_content() == "1"
    assert await first.nth(1).locator("a").get_attribute("href") == BUDGET.link
    assert await first.nth(1).locator("a").text_content() == BUDGET.title
    assert await first.nth(2).text_content() == "politics"
    assert await first.nth(3).text_content() == "Maria Keller"
    assert await first.nth(4).text_content() == "9"  # the ranked value
    assert [await first.nth(i).text_content() for i in (5, 6, 7)] == ["9", "1", "1"]
    markets = page.locator(f'{table} tr[data-key="{MARKETS.article_id}"] a')
    assert await markets.text_content() == MARKETS.title
    assert await page.locator(f"{table} em").count() == 0
    assert await page.locator(f'{table} tr[data-key="{NOT_A_LINK.article_id}"] a').count() == 0
    assert await page.locator(f"{table} a[href^='javascript']").count() == 0
    derby = page.locator(f'{table} tr[data-key="{DERBY.article_id}"] td.title')
    assert await derby.locator(".unverified").text_content() == "unverified"
    assert await derby.locator("a").count() == 0  # a claimed link is not followed
    untitled = page.locator(f'{table} tr[data-key="{UNTITLED.article_id}"] a')
    assert await untitled.text_content() == UNTITLED.article_id  # no title: its id

    # The trending panel: everything was counted in the last minutes, nothing before.
    await wait_for_keys(page, trending, by_views)
    top = page.locator(f"{trending} tbody tr").nth(0).locator("td")
    assert [await top.nth(i).text_content() for i in (2, 3, 4)] == ["9", "0", "new"]
    status = page.locator("#trending-status")
    assert await status.get_attribute("aria-live") == "polite"
    assert await status.text_content() == f"Trending: {BUDGET.title} leads with 9 views."

    # The CSV link: the same query, as a download.
    csv = page.get_by_role("link", name="Download CSV")
    href = await csv.get_attribute("href")
    assert (
        href
        == "/api/v1/reports/popular?period=24h&metric=views&group_by=article&limit=20&format=csv"
    )
    download = await page.request.get(base + href)
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    lines = (await download.text()).splitlines()
    assert lines[0].startswith("rank,article_id,title,url")
    assert [line.split(",")[1] for line in lines[1:]] == by_views

    # Filters reload the table, and the address keeps them.
    await page.get_by_label("Metric").select_option("shares")
    await wait_for_keys(page, table, [DERBY.article_id, UNTITLED.article_id, BUDGET.article_id])
    assert await page.locator("#value-heading").text_content() == "Shares"
    assert parse_qs(urlsplit(page.url).query) == {"metric": ["shares"]}
    await page.get_by_label("Category").fill("politics")
    await page.get_by_label("Category").press("Enter")
    await wait_for_keys(page, table, [UNTITLED.article_id, BUDGET.article_id])
    await page.get_by_label("Metric").select_option("shares:whatsapp")
    await wait_for_keys(page, table, [])
    assert await page.locator(f"{table} td.empty").text_content() == (
        "Nothing counted in this period."
    )
    await page.get_by_label("Metric").select_option("views")
    await wait_for_keys(
        page, table, [BUDGET.article_id, NOT_A_LINK.article_id, UNTITLED.article_id]
    )
    assert parse_qs(urlsplit(page.url).query) == {"category": ["politics"]}
    assert parse_qs(urlsplit(await csv.get_attribute("href") or "").query) == {
        "period": ["24h"],
        "metric": ["views"],
        "category": ["politics"],
        "group_by": ["article"],
        "limit": ["20"],
        "format": ["csv"],
    }
    # Dates of one's own: the last seven days, today included, hold everything.
    await page.get_by_label("Period").select_option("custom")
    assert await page.get_by_label("From").is_visible()
    await wait_for_keys(
        page, table, [BUDGET.article_id, NOT_A_LINK.article_id, UNTITLED.article_id]
    )
    query = parse_qs(urlsplit(await csv.get_attribute("href") or "").query)
    assert set(query) >= {"from", "to"}
    assert "period" not in query
    await page.get_by_label("Period").select_option("24h")
    assert not await page.get_by_label("From").is_visible()

    # A click on a row draws its curve: views per hour, 25 buckets (this hour included).
    await page.locator(f'{table} tr[data-key="{BUDGET.article_id}"] td').nth(2).click()
    await wait_for_series(page, "#chart", [BUDGET.views], 25)
    chart = page.locator("#chart svg")
    assert await chart.get_attribute("role") == "img"
    assert BUDGET.title in (await chart.locator("title").first.text_content() or "")
    assert await page.locator(f'{table} tr[aria-current="true"]').count() == 1
    assert parse_qs(urlsplit(page.url).query)["article"] == [BUDGET.article_id]
    # Enter on a focused row does the same.
    await page.locator(f'{table} tr[data-key="{UNTITLED.article_id}"]').focus()
    await page.keyboard.press("Enter")
    await wait_for_series(page, "#chart", [UNTITLED.views], 25)
    # Per day over a week: seven buckets.
    await page.get_by_label("Span").select_option("7d")
    await wait_for_series(page, "#chart", [UNTITLED.views], 7)

    # Take-off: the selected article as A, another typed in as B, from their first hour.
    await page.get_by_role("button", name="Take-off: set as A").click()
    assert await page.get_by_label("Article A").input_value() == UNTITLED.article_id
    await page.get_by_label("Article B").fill(BUDGET.article_id)
    await page.get_by_role("button", name="Compare").click()
    await wait_for_series(page, "#compare", [UNTITLED.views, BUDGET.views], 24)
    # The legend names them in full in its tooltips (the text may be cut to fit).
    legend = page.locator("#compare svg g.legend > title")
    assert await legend.all_text_contents() == [f"A: {UNTITLED.article_id}", f"B: {BUDGET.title}"]
    assert await page.locator("#compare svg polyline").count() == 2
    await page.screenshot(path=screenshot_path("reports-page.png"), full_page=True)

    # A bookmark of this view brings all of it back.
    bookmark = page.url
    query = parse_qs(urlsplit(bookmark).query)
    assert query["a"] == [UNTITLED.article_id]
    assert query["b"] == [BUDGET.article_id]
    assert query["span"] == ["7d"]
    await page.goto(bookmark)
    await wait_for_keys(
        page, table, [BUDGET.article_id, NOT_A_LINK.article_id, UNTITLED.article_id]
    )
    assert await page.get_by_label("Category").input_value() == "politics"
    await wait_for_series(page, "#chart", [UNTITLED.views], 7)
    await wait_for_series(page, "#compare", [UNTITLED.views, BUDGET.views], 24)

    # The trending panel refreshes itself every 30 s.
    assert watch.console_errors == []
    before = len(watch.paths("/api/v1/reports/trending"))
    late = Article("2026/11/late", "A late story", "sport", "Tom Ruiz", views=20)
    await seed(tracker, late)
    await page.clock.fast_forward(30_000)
    await wait_for_keys(page, trending, [late.article_id, *by_views])
    assert len(watch.paths("/api/v1/reports/trending")) >= before + 1
    assert await status.text_content() == f"Trending: {late.title} leads with 20 views."

    # An article not counted yet has no take-off curve: the API's reason is shown.
    await page.get_by_label("Article B").fill("2026/11/not-yet")
    await page.get_by_role("button", name="Compare").click()
    compare_status = page.locator("#compare-status")
    await page.wait_for_function(
        "() => document.querySelector('#compare-status').classList.contains('error')"
    )
    assert await compare_status.text_content() == (
        "Article B (2026/11/not-yet): since_publish: the article is not known yet"
    )
    # The browser logs the 400 itself; nothing else may be there.
    assert len(watch.console_errors) == 1
    assert "400" in watch.console_errors.pop()
    await page.get_by_label("Article B").fill(BUDGET.article_id)
    await page.get_by_role("button", name="Compare").click()
    await wait_for_series(page, "#compare", [UNTITLED.views, BUDGET.views], 24)

    # On a phone: one column, nothing wider than the screen (the table scrolls in its box).
    await page.set_viewport_size(PHONE)
    await page.reload()
    await wait_for_keys(
        page, table, [BUDGET.article_id, NOT_A_LINK.article_id, UNTITLED.article_id]
    )
    await wait_for_series(page, "#chart", [UNTITLED.views], 7)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = await page.locator("#chart svg").bounding_box()
    assert box is not None
    assert box["width"] <= PHONE["width"]
    await page.screenshot(path=screenshot_path("reports-phone.png"), full_page=True)

    # The page's answers carry the policy the page was checked under.
    response = await page.goto(f"{base}/reports")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    # Logging out ends it: the page sends to the form again.
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(f"{base}/reports/login")
    await page.goto(f"{base}/reports")
    assert page.url == f"{base}/reports/login"
    watch.assert_clean()
    await context.close()


async def test_login_form(
    settings: Settings,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    browser: Browser,
) -> None:
    tracker = await start_tracker(aiohttp_server, aiohttp_client, settings)
    base = tracker.base
    watch = Watch()
    context = await new_context(browser, watch)
    page = await context.new_page()

    # Without the cookie, the page and its curves are not to be seen.
    await page.goto(f"{base}/reports")
    assert page.url == f"{base}/reports/login"
    failed = page.get_by_text("That token is not valid.")
    assert not await failed.is_visible()

    await page.get_by_label("Access token").fill("trk_not-a-token")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/reports/login?failed=1")
    assert await failed.is_visible()
    assert await page.get_by_label("Access token").get_attribute("aria-invalid") == "true"
    assert await context.cookies() == []
    await page.screenshot(path=screenshot_path("reports-login.png"))

    await page.goto(f"{base}/reports")
    assert page.url == f"{base}/reports/login"
    watch.assert_clean()
    await context.close()


ARTICLE_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>A late story — The Daily Ledger</title>
  <script defer src="{tracker}/tracker.js" data-article="2026/11/late-story"
          data-title="A late story" data-category="culture"></script>
</head>
<body>
  <h1>A late story</h1>
  <aside><h2>Most read</h2><div id="side" data-tracker-popular data-period="24h"
    data-limit="5">Loading…</div></aside>
  <aside><h2>Most read in politics</h2><div id="politics" data-tracker-popular
    data-period="24h" data-category="politics" data-limit="5">Loading…</div></aside>
  <footer><h2>Most read</h2><div id="foot" data-tracker-popular data-limit="5"
    data-period="24h">Loading…</div>
  <div id="too-many" data-tracker-popular data-period="24h" data-limit="50">Still here.</div>
  </footer>
</body>
</html>
"""


async def test_most_read_box_on_another_origin(
    settings: Settings,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    browser: Browser,
) -> None:
    # The news site: another origin (another port), serving an article page.
    pages: dict[str, str] = {}

    async def article(request: web.Request) -> web.Response:
        return web.Response(text=pages["article"], content_type="text/html")

    site_app = web.Application()
    site_app.router.add_get("/story", article)
    site = await aiohttp_server(site_app, host="127.0.0.1")
    origin = str(site.make_url("")).rstrip("/")
    # The seeding events stand for the newsroom's sender: the list shows verified articles.
    served = settings.with_overrides(allowed_origins=(origin,), trust_event_metadata=True)
    tracker = await start_tracker(aiohttp_server, aiohttp_client, served)
    assert urlsplit(origin).port != urlsplit(tracker.base).port
    await seed(tracker, *ARTICLES)
    pages["article"] = ARTICLE_PAGE.format(tracker=tracker.base)

    watch = Watch()
    context = await new_context(browser, watch)
    page = await context.new_page()
    await page.goto(f"{origin}/story")
    await page.wait_for_function(
        "() => document.querySelectorAll('[data-tracker-popular] ol').length === 3"
    )

    # The top five, less the one whose url is no web page; untitled: its id.
    linked = [a for a in ARTICLES if a is not NOT_A_LINK]
    for box in ("#side", "#foot"):
        links = page.locator(f"{box} ol > li > a")
        assert await links.all_text_contents() == [a.name for a in linked]
        assert [await link.get_attribute("href") for link in await links.all()] == [
            a.link for a in linked
        ]
    politics = page.locator("#politics ol > li > a")
    assert await politics.all_text_contents() == [BUDGET.name, UNTITLED.name]
    assert await page.locator("[data-tracker-popular] em").count() == 0
    assert await page.locator("a[href^='javascript']").count() == 0

    # One request per distinct query (the two boxes alike share one), across origins.
    reads = [r for r in watch.requests if urlsplit(r.url).path == "/api/v1/popular"]
    assert len(reads) == 3, [r.url for r in reads]
    assert all(r.headers.get("origin") == origin for r in reads)
    # A box the API refuses (limit over 20) stays as it was: no error in the page, only the
    # browser's own note of the 400.
    assert await page.locator("#too-many").text_content() == "Still here."
    await page.screenshot(path=screenshot_path("most-read-widget.png"), full_page=True)

    # The page's own view was counted too: tracker.js did both.
    async def counted() -> bool:
        response = await tracker.client.get("/api/v1/articles/2026/11/late-story/stats")
        body: dict[str, Any] = await response.json()
        return response.status == 200 and body["views"] == 1

    deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
    while not await counted():
        assert asyncio.get_running_loop().time() < deadline, "the view was not counted"
        await asyncio.sleep(0.05)

    assert len(watch.console_errors) == 1, watch.console_errors
    assert "400" in watch.console_errors.pop()
    watch.assert_clean()
    await context.close()
