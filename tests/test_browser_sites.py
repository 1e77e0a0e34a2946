"""tracker.js on today's news sites, in Debian's headless Chromium: a single-page app, an
infinite-scroll page, a prerendered or background page, and engaged time and read-through;
every page on a site of its own origin (news.example) under a strict Content Security
Policy, loading tracker.js from tracker's origin with Subresource Integrity.

Prerendering: headless Chromium started by Playwright does not prerender speculation
rules, so the tests drive `document.prerendering` and `prerenderingchange`, and the page's
visibility, as the browser would (an init script holds the page's state; events are fired
as Chromium fires them). Likewise the back/forward cache, which Playwright's Chromium runs
without: the test fires the pagehide/pageshow/pagehide of a round trip through it."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, Request

from tests.chromium import launched
from tests.conftest import wait_until
from tests.helpers import BROWSER_UA
from tracker.core.settings import Settings
from tracker.web.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

AiohttpServer = Callable[..., Awaitable[TestServer]]
SITE = "news.example"
TIMEOUT_S = 15.0
SETTLE_S = 1.5

# The site's own script (external: the CSP allows no inline code). A single-page app:
# a click on a nav link swaps the article and its <meta name="tracker:..."> tags, then
# pushState; the back button shows the article of the address it returns to.
SITE_JS = """
function show(id) {
  document.querySelector('meta[name="tracker:article"]').content = id;
  document.querySelector('meta[name="tracker:title"]').content = "Story " + id;
  document.querySelector("h1").textContent = "Story " + id;
}
document.addEventListener("click", function (ev) {
  var link = ev.target.closest("a[data-nav]");
  if (!link) return;
  ev.preventDefault();
  var id = link.getAttribute("data-nav");
  show(id);
  history.pushState({}, "", "/spa/" + id.split("/")[1]);
});
addEventListener("popstate", function () { show("spa/" + location.pathname.split("/")[2]); });
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
{head}
<script defer src="/site.js"></script>
<script defer src="{tracker}/tracker.js" integrity="{sri}" crossorigin="anonymous" {attrs}></script>
</head><body style="margin:0">{body}</body></html>
"""

LONG_TEXT = "<p>" + "Paragraph of the story. " * 40 + "</p>"


def article_block(article_id: str, height_px: int = 1400) -> str:
    return (
        f'<article data-tracker-article="{article_id}" data-title="Story {article_id}" '
        f'data-category="politics" style="height:{height_px}px;border-top:1px solid #ccc">'
        f"<h2>Story {article_id}</h2>{LONG_TEXT}"
        f'<button data-share="telegram">Telegram</button></article>'
    )


def strict_csp(tracker: str) -> str:
    """Scripts from the site and tracker only (no inline, no eval); requests to tracker."""
    return (
        f"default-src 'self'; script-src 'self' {tracker}; connect-src {tracker}; "
        f"img-src 'self' {tracker}; style-src 'self' 'unsafe-inline'; object-src 'none'; "
        "base-uri 'none'; require-trusted-types-for 'script'"
    )


@dataclass
class Site:
    """The news site (pages at news.example) and tracker (at 127.0.0.1), both on loopback."""

    base: str
    tracker: str
    sri: str
    pages: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, *, title: str, attrs: str, body: str, head: str = "") -> str:
        self.pages[path] = PAGE.format(
            title=title, head=head, tracker=self.tracker, sri=self.sri, attrs=attrs, body=body
        )
        return self.base + path


@dataclass
class Seen:
    """The events the pages POSTed, and any CSP violation or page error."""

    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def of(self, type_: str, article_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == type_ and (article_id is None or e["article_id"] == article_id)
        ]

    def on_request(self, request: Request) -> None:
        if request.method == "POST" and urlsplit(request.url).path == "/api/v1/events":
            body = json.loads(request.post_data or "null")
            self.events.extend(body.get("events", [body]))


async def start_site(aiohttp_server: AiohttpServer, settings: Settings) -> Site:
    """The site's server first (tracker must allow its origin), then tracker's."""
    site = Site("", "", "")

    async def page(request: web.Request) -> web.Response:
        if request.path == "/favicon.ico":
            return web.Response(status=204)
        text = site.pages.get(request.path)
        if text is None:
            raise web.HTTPNotFound()
        headers = {"Content-Security-Policy": strict_csp(site.tracker), "Cache-Control": "no-store"}
        return web.Response(text=text, content_type="text/html", headers=headers)

    async def site_js(_: web.Request) -> web.Response:
        return web.Response(text=SITE_JS, content_type="text/javascript")

    site_app = web.Application()
    site_app.router.add_get("/site.js", site_js)
    site_app.router.add_get("/{tail:.*}", page)
    site_server = await aiohttp_server(site_app, host="127.0.0.1")
    site.base = f"http://{SITE}:{site_server.port}"
    tracker_settings = settings.with_overrides(
        allowed_origins=(site.base,),
        dedup_window_s=1800,
        # The test's own posts stand for other readers (X-Forwarded-For).
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    tracker_server = await aiohttp_server(
        create_app(tracker_settings, run_flusher=False), host="127.0.0.1"
    )
    site.tracker = str(tracker_server.make_url("")).rstrip("/")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{site.tracker}/tracker.js.sha384") as response,
    ):
        assert response.status == 200
        site.sri = (await response.text()).strip()
    return site


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with launched(SITE) as browser:
        yield browser


async def new_context(
    browser: Browser, seen: Seen, *, user_agent: str = BROWSER_UA
) -> BrowserContext:
    context = await browser.new_context(
        user_agent=user_agent, locale="en-US", viewport={"width": 1100, "height": 800}
    )
    context.set_default_timeout(TIMEOUT_S * 1000)
    context.on("request", seen.on_request)

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: seen.problems.append(f"error: {error}"))
        page.on(
            "console",
            lambda message: (
                seen.problems.append(f"console: {message.text}")
                if message.type in ("error", "warning")
                else None
            ),
        )

    context.on("page", watch)
    return context


async def stats(tracker: str, *ids: str) -> dict[str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tracker}/api/v1/articles/stats", params={"ids": ",".join(ids)}) as r,
    ):
        assert r.status == 200, await r.text()
        body = await r.json()
    return {a["article_id"]: a for a in body["articles"]}


async def views_of(tracker: str, *ids: str) -> dict[str, int]:
    return {k: v["views"] for k, v in (await stats(tracker, *ids)).items()}


async def until_views(tracker: str, expected: dict[str, int]) -> None:
    async def reached() -> bool:
        return await views_of(tracker, *expected) == expected

    await wait_until(reached, timeout_s=TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)
    assert await views_of(tracker, *expected) == expected


# The page's visibility as Chromium reports it, held by the test: hidden() and shown()
# flip it and fire visibilitychange; prerendering() holds document.prerendering true
# until activated() fires prerenderingchange.
VISIBILITY = """
(() => {
  let state = window.__startHidden ? "hidden" : "visible";
  let prerendering = !!window.__startPrerendering;
  const define = (name, get) =>
    Object.defineProperty(Document.prototype, name, { get, configurable: true });
  define("visibilityState", () => state);
  define("hidden", () => state === "hidden");
  define("prerendering", () => prerendering);
  window.__setVisible = (visible) => {
    state = visible ? "visible" : "hidden";
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__activate = () => {
    prerendering = false;
    document.dispatchEvent(new Event("prerenderingchange"));
  };
})();
"""


async def test_single_page_app_counts_each_navigation_once(
    settings: Settings, aiohttp_server: AiohttpServer, chromium: Browser
) -> None:
    site = await start_site(aiohttp_server, settings)
    head = (
        '<meta name="tracker:article" content="spa/1">'
        '<meta name="tracker:title" content="Story spa/1">'
    )
    body = (
        "<h1>Story spa/1</h1>"
        '<nav><a href="/spa/2" data-nav="spa/2" id="to2">2</a> '
        '<a href="/spa/3" data-nav="spa/3" id="to3">3</a></nav>'
        '<button data-share="whatsapp" id="share">share</button>'
    )
    for n in (1, 2, 3):
        site.add(f"/spa/{n}", title="SPA", attrs="data-spa", head=head, body=body)
    seen = Seen()
    context = await new_context(chromium, seen)
    page = await context.new_page()
    await page.goto(site.base + "/spa/1")
    await until_views(site.tracker, {"spa/1": 1})

    # Two navigations: one view each, for the article the app put on the page.
    await page.click("#to2")
    await until_views(site.tracker, {"spa/1": 1, "spa/2": 1})
    await page.click("#share")  # counts for the article on screen
    await page.click("#to3")
    await until_views(site.tracker, {"spa/1": 1, "spa/2": 1, "spa/3": 1})

    # Back: the address of a view already counted; no new view is counted.
    await page.go_back()
    await page.wait_for_url(site.base + "/spa/2")
    await asyncio.sleep(SETTLE_S)
    assert await views_of(site.tracker, "spa/1", "spa/2", "spa/3") == {
        "spa/1": 1,
        "spa/2": 1,
        "spa/3": 1,
    }
    assert (await stats(site.tracker, "spa/2"))["spa/2"]["shares"]["whatsapp"] == 1
    assert [e["article_id"] for e in seen.of("view")] == ["spa/1", "spa/2", "spa/3"]
    assert [e["title"] for e in seen.of("view")] == ["Story spa/1", "Story spa/2", "Story spa/3"]
    # Only the first view carries the page's referrer: the others came from within.
    assert all("referrer" not in e for e in seen.of("view")[1:])

    # The app's own API: tracker.view() and tracker.share() from the site's code.
    await page.evaluate(
        "tracker.view('spa/api', {title: 'By the API', category: 'world'});tracker.share('vk')"
    )
    await until_views(site.tracker, {"spa/api": 1})
    (api_view,) = seen.of("view", "spa/api")
    assert (api_view["title"], api_view["category"]) == ("By the API", "world")
    assert (await stats(site.tracker, "spa/api"))["spa/api"]["shares"]["vk"] == 1
    assert seen.problems == []
    await context.close()


async def test_infinite_scroll_counts_articles_seen_for_a_second(
    settings: Settings, aiohttp_server: AiohttpServer, chromium: Browser
) -> None:
    site = await start_site(aiohttp_server, settings)
    body = "".join(article_block(f"scroll/{n}") for n in (1, 2, 3))
    url = site.add("/scroll", title="Scroll", attrs='data-article="scroll/1"', body=body)
    seen = Seen()
    context = await new_context(chromium, seen)
    page = await context.new_page()
    await page.goto(url)
    await until_views(site.tracker, {"scroll/1": 1, "scroll/2": 0, "scroll/3": 0})

    # Half of the second article in view for a moment only: not counted.
    await page.evaluate("window.scrollTo(0, 1400)")
    await asyncio.sleep(0.4)
    await page.evaluate("window.scrollTo(0, 0)")
    await asyncio.sleep(1.5)
    assert await views_of(site.tracker, "scroll/2") == {"scroll/2": 0}

    # In view for more than a second: counted once, however long it stays or comes back.
    await page.evaluate("window.scrollTo(0, 1400)")
    await until_views(site.tracker, {"scroll/1": 1, "scroll/2": 1, "scroll/3": 0})
    await page.locator('[data-tracker-article="scroll/2"] [data-share]').click()
    await page.evaluate("window.scrollTo(0, 0)")
    await asyncio.sleep(1.2)
    await page.evaluate("window.scrollTo(0, 1400)")
    await asyncio.sleep(1.5)
    counts = await stats(site.tracker, "scroll/1", "scroll/2", "scroll/3")
    assert {k: v["views"] for k, v in counts.items()} == {
        "scroll/1": 1,
        "scroll/2": 1,
        "scroll/3": 0,
    }
    # The share button inside the second article counted for it.
    assert counts["scroll/2"]["shares"]["telegram"] == 1
    assert counts["scroll/1"]["shares"]["telegram"] == 0
    (stacked,) = seen.of("view", "scroll/2")
    assert (stacked["title"], stacked["category"]) == ("Story scroll/2", "politics")

    # Articles added below later (the next one loads) are watched too. (DOM calls, not
    # HTML: the page's policy requires Trusted Types for HTML sinks.)
    await page.evaluate(
        """() => {
          const next = document.querySelector('[data-tracker-article="scroll/3"]').cloneNode(true);
          next.setAttribute("data-tracker-article", "scroll/4");
          next.setAttribute("data-title", "Story scroll/4");
          document.body.appendChild(next);
        }"""
    )
    await asyncio.sleep(1.2)
    await page.evaluate("window.scrollTo(0, 3 * 1400)")
    # Straight past the third to the fourth: the third was never seen for a second.
    await until_views(site.tracker, {"scroll/3": 0, "scroll/4": 1})
    assert seen.problems == []
    await context.close()


async def test_prerendered_and_background_pages_count_only_once_shown(
    settings: Settings, aiohttp_server: AiohttpServer, chromium: Browser
) -> None:
    site = await start_site(aiohttp_server, settings)
    body = '<p>Views: <span id="views" data-tracker-views="pre/1">…</span></p>'
    url = site.add("/pre", title="Pre", attrs='data-article="pre/1"', body=body)
    await _post_views(site.tracker, "pre/1", 3)  # earlier readers
    seen = Seen()
    context = await new_context(chromium, seen)
    # Prerendered, then activated; then the same reader opens it in a background tab
    # and switches to it later (de-duplicated by tracker: the count stays).
    rounds = (
        ("__startPrerendering", "__activate()", 3, 4),
        ("__startHidden", "__setVisible(true)", 4, 4),
    )
    for flag, show, before, after in rounds:
        page = await context.new_page()
        await page.add_init_script(f"window.{flag} = true;" + VISIBILITY)
        await page.goto(url)

        async def filled(page: Page = page) -> bool:  # (wait_for_function evals: CSP says no)
            return (await page.text_content("#views") or "…").isdigit()

        # The count on the page fills while it waits to be shown; no view is sent.
        await wait_until(filled, timeout_s=TIMEOUT_S)
        await asyncio.sleep(SETTLE_S)
        assert seen.of("view") == [], flag
        assert await views_of(site.tracker, "pre/1") == {"pre/1": before}
        # Shown: the view is sent, once.
        await page.evaluate(show)
        await wait_until(lambda: _count(seen, "view", 1), timeout_s=TIMEOUT_S)
        await until_views(site.tracker, {"pre/1": after})
        assert len(seen.of("view")) == 1, flag
        await page.close()
        seen.events.clear()
    assert seen.problems == []
    await context.close()


async def _post_views(tracker: str, article_id: str, n: int) -> None:
    if n <= 0:
        return
    async with aiohttp.ClientSession(headers={"User-Agent": BROWSER_UA}) as session:
        for i in range(n):
            async with session.post(
                f"{tracker}/api/v1/events",
                json={"type": "view", "article_id": article_id},
                headers={"X-Forwarded-For": f"10.0.0.{i + 1}"},
            ) as r:
                assert r.status == 202, await r.text()


async def test_engaged_time_and_read_through(
    settings: Settings, aiohttp_server: AiohttpServer, chromium: Browser
) -> None:
    site = await start_site(aiohttp_server, settings)
    body = (
        '<header style="height:300px">Site</header>'
        f'<div data-tracker-body style="height:3000px">{LONG_TEXT}</div>'
        '<footer style="height:1500px">Related</footer>'
    )
    url = site.add("/read", title="Read", attrs='data-article="read/1"', body=body)
    seen = Seen()
    context = await new_context(chromium, seen)
    page = await context.new_page()
    await page.add_init_script(VISIBILITY)
    began = time.monotonic()
    await page.goto(url)
    await until_views(site.tracker, {"read/1": 1})
    loaded_s = time.monotonic() - began  # active from the view on (5 s without input)

    # Visible and active (the pointer moves twice a second) for a measured time, then
    # idle for longer than 5 s (only the first 5 s of it count), then hidden.
    async def active_for(seconds: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            await page.mouse.move(100 + 50 * (int(time.monotonic() * 2) % 2), 100)
            await asyncio.sleep(0.5)
        return time.monotonic() - began

    expected_s = loaded_s + await active_for(8.0) + 5.0
    await asyncio.sleep(9.0)
    await page.evaluate("__setVisible(false)")
    await wait_until(lambda: _count(seen, "engage", 1), timeout_s=TIMEOUT_S)
    (sent,) = seen.of("engage")
    print(f"\nengaged time: expected {expected_s:.1f} s, sent {sent['engaged_s']} s")
    assert abs(sent["engaged_s"] - expected_s) <= 0.2 * expected_s
    assert sent["depth"] == 0
    assert sent["seq"] == 0

    async def stored_engaged() -> bool:
        article = (await stats(site.tracker, "read/1"))["read/1"]
        return bool(article["engaged_readers"] == 1)

    await wait_until(stored_engaged, timeout_s=TIMEOUT_S)
    article = (await stats(site.tracker, "read/1"))["read/1"]
    assert abs(article["engaged_avg_s"] - expected_s) <= 0.2 * expected_s
    assert article["read_through"] == 0

    # Shown again, scrolled to the end of the body, hidden: the increment only.
    await page.evaluate("__setVisible(true)")
    await page.mouse.wheel(0, 3400)
    await page.evaluate("window.scrollTo(0, 3400)")
    await asyncio.sleep(1.5)
    await page.evaluate("__setVisible(false)")
    await wait_until(lambda: _count(seen, "engage", 2), timeout_s=TIMEOUT_S)
    second = seen.of("engage")[1]
    assert second["depth"] == 100
    assert second["prev_depth"] == 0
    assert second["seq"] == 1
    assert 0 < second["engaged_s"] <= 4

    # A round trip through the back/forward cache: pagehide (persisted), pageshow,
    # pagehide again. Playwright's Chromium runs without the cache, so the test fires the
    # events as Chromium fires them; the script's state survives as in a restored page.
    await page.evaluate("__setVisible(true)")
    await active_for(2.5)
    await page.evaluate(
        "dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}));"
        "dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}));"
        "dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}));"
    )
    await asyncio.sleep(SETTLE_S)
    engages = seen.of("engage")
    # The second pagehide, with nothing new since the first, sent nothing.
    assert len(engages) == 3, engages
    assert engages[2]["seq"] == 2
    assert engages[2]["depth"] == 100
    assert engages[2]["prev_depth"] == 100
    assert engages[2]["engaged_s"] >= 2

    # What the stats say, exactly once: engaged seconds over one engaged reader, and
    # that reader reached the end.
    total_s = sum(e["engaged_s"] for e in engages)

    async def counted() -> bool:
        article = (await stats(site.tracker, "read/1"))["read/1"]
        return bool(article["engaged_avg_s"] == total_s)

    await wait_until(counted, timeout_s=TIMEOUT_S)
    article = (await stats(site.tracker, "read/1"))["read/1"]
    assert article["engaged_readers"] == 1
    assert article["read_through"] == 1.0
    assert seen.problems == []
    await context.close()


async def _count(seen: Seen, type_: str, n: int) -> bool:
    return len(seen.of(type_)) >= n


async def test_bots_and_do_not_track_count_nothing(
    settings: Settings, aiohttp_server: AiohttpServer, chromium: Browser
) -> None:
    site = await start_site(aiohttp_server, settings.with_overrides(respect_dnt=True))
    body = f'<div data-tracker-body style="height:2000px">{LONG_TEXT}</div>' + article_block(
        "bot/2"
    )
    url = site.add("/bot", title="Bot", attrs='data-article="bot/1"', body=body)

    # A crawler (Googlebot's User-Agent): it sends, tracker counts nothing.
    seen = Seen()
    crawler = await new_context(
        chromium,
        seen,
        user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )
    page = await crawler.new_page()
    await page.add_init_script(VISIBILITY)
    await page.goto(url)
    await page.evaluate("window.scrollTo(0, 2000)")
    await page.mouse.move(5, 5)
    await asyncio.sleep(1.5)
    await page.evaluate("__setVisible(false)")
    await wait_until(lambda: _count(seen, "engage", 1), timeout_s=TIMEOUT_S)
    await crawler.close()

    # A reader with Do Not Track on (and tracker respecting it): nothing is even sent.
    dnt_seen = Seen()
    reader = await new_context(chromium, dnt_seen)
    page = await reader.new_page()
    await page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'});" + VISIBILITY
    )
    await page.goto(url)
    await page.evaluate("window.scrollTo(0, 2000)")
    await asyncio.sleep(1.5)
    await page.evaluate("__setVisible(false)")
    await asyncio.sleep(SETTLE_S)
    assert dnt_seen.events == []
    await reader.close()

    counts = await stats(site.tracker, "bot/1", "bot/2")
    for article in counts.values():
        assert article["views"] == 0
        assert article["engaged_readers"] == 0
        assert article["engaged_avg_s"] == 0
