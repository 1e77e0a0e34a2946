"""tracker.js in a real browser: Debian's headless Chromium, driven by Playwright, on the
demo pages served by the app on a loopback port.

Nothing leaves the machine: every request the browser makes goes through a route that
passes loopback requests on, answers the share sites (t.me, facebook.com, ...) with a
small page of its own, and aborts anything else (and the test fails if anything was).

Chromium comes from apt (`apt-get install chromium`), never from `playwright install`.
Without /usr/bin/chromium these tests are skipped on a workstation and fail in CI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Response,
    Route,
)

from tests.conftest import wait_until
from tests.helpers import BROWSER_UA, Client
from tracker.core.settings import Settings
from tracker.web.app import create_app

pytestmark = pytest.mark.timeout(120)

AiohttpServer = Callable[..., Awaitable[TestServer]]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
ARTICLE = "2026/11/budget-vote-analysis"
SHARE_SITES = ("t.me", "facebook.com", "twitter.com", "x.com", "wa.me", "example.org")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SHARE_PAGE = "<!doctype html><title>share</title><p>A share site, answered by the test.</p>"
LINK_CHANNELS = ("telegram", "facebook", "twitter", "whatsapp")
ALL_CHANNELS = (*LINK_CHANNELS, "copy_link", "print")
# window.print() stubbed so headless Chromium never blocks on a dialog; like a real
# browser's, it fires beforeprint and afterprint, so a double count would show.
PRINT_STUB = """
window.__prints = 0;
window.print = function () {
  window.__prints += 1;
  window.dispatchEvent(new Event("beforeprint"));
  window.dispatchEvent(new Event("afterprint"));
};
"""
TIMEOUT_MS = 15_000
POPUP_TIMEOUT_MS = 5_000
SETTLE_S = 1.0  # time allowed for a stray second request or count to show up


def is_share_site(host: str) -> bool:
    return any(host == site or host.endswith("." + site) for site in SHARE_SITES)


@dataclass
class Traffic:
    """What the browser asked for, as seen by the route and the context's events."""

    events: list[dict[str, Any]] = field(default_factory=list)  # POSTed beacons, parsed
    content_types: list[str] = field(default_factory=list)  # of those POSTs
    event_statuses: list[int] = field(default_factory=list)  # the app's answers to them
    stats_requests: list[str] = field(default_factory=list)
    share_sites: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def of(self, type_: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("type") == type_ and (channel is None or e.get("channel") == channel)
        ]

    def on_request(self, request: Request) -> None:
        path = urlsplit(request.url).path
        if request.method == "POST" and path == "/api/v1/events":
            self.content_types.append(request.headers.get("content-type", ""))
            body = json.loads(request.post_data or "null")
            self.events.extend(body.get("events", [body]))
        elif path.startswith("/api/v1/articles/"):  # the batch read, or one article's
            self.stats_requests.append(request.url)

    def on_page(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def on_response(self, response: Response) -> None:
        request = response.request
        if request.method == "POST" and urlsplit(request.url).path == "/api/v1/events":
            self.event_statuses.append(response.status)

    async def route(self, route: Route, request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        if host in LOOPBACK:
            await route.continue_()
        elif is_share_site(host):
            self.share_sites.append(request.url)
            await route.fulfill(status=200, content_type="text/html", body=SHARE_PAGE)
        else:
            self.blocked.append(request.url)
            await route.abort("blockedbyclient")


async def new_context(browser: Browser, traffic: Traffic) -> BrowserContext:
    # A desktop Chrome's User-Agent: headless Chromium's own says HeadlessChrome and
    # would be dropped as a bot. en-US: numbers are drawn with toLocaleString().
    context = await browser.new_context(
        user_agent=BROWSER_UA, locale="en-US", viewport={"width": 1100, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    await context.route("**/*", traffic.route)
    context.on("request", traffic.on_request)
    context.on("response", traffic.on_response)
    context.on("page", traffic.on_page)
    return context


async def serve(aiohttp_server: AiohttpServer, settings: Settings) -> str:
    app = create_app(settings.with_overrides(demo=True), run_flusher=False)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("")).rstrip("/")


async def read_stats(base: str, *ids: str) -> dict[str, dict[str, Any]]:
    """Counts as the website reads them: the batch stats API."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/v1/articles/stats", params={"ids": ",".join(ids)}) as response,
    ):
        assert response.status == 200, await response.text()
        body = await response.json()
    return {a["article_id"]: a for a in body["articles"]}


async def article_stats(base: str, article_id: str = ARTICLE) -> dict[str, Any]:
    return (await read_stats(base, article_id))[article_id]


async def wait_for_views_text(page: Page, expected: str) -> None:
    await page.wait_for_function(
        "expected => document.querySelector('#views').textContent === expected", arg=expected
    )


async def wait_for_answered_events(traffic: Traffic, n: int) -> None:
    async def answered() -> bool:
        return len(traffic.event_statuses) >= n

    await wait_until(answered, timeout_s=TIMEOUT_MS / 1000)


def same_url(expected: str) -> Callable[[str], bool]:
    def matches(url: str) -> bool:
        return url == expected

    return matches


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@pytest.mark.slow
async def test_article_page_counts_one_view_and_one_share_per_channel(
    settings: Settings, aiohttp_server: AiohttpServer, browser: Browser
) -> None:
    base = await serve(aiohttp_server, settings.with_overrides(dedup_window_s=1800))
    traffic = Traffic()
    context = await new_context(browser, traffic)
    await context.add_init_script(PRINT_STUB)
    page = await context.new_page()

    # 1. A page load counts one view; 3. the count shown under the article reads it back.
    # The page reads first, as a reader's would: the API is not asked before it.
    await page.goto(f"{base}/demo")
    await wait_for_answered_events(traffic, 1)
    await wait_for_views_text(page, "1")

    async def one_view() -> bool:
        views: int = (await article_stats(base))["views"]
        return views == 1

    await wait_until(one_view, timeout_s=TIMEOUT_MS / 1000)
    await asyncio.sleep(SETTLE_S)
    assert (await article_stats(base))["views"] == 1
    assert len(traffic.of("view")) == 1, traffic.events
    (sent,) = traffic.of("view")
    assert sent["article_id"] == ARTICLE
    assert sent["url"] == page.url
    assert sent["title"] == "Why the budget vote split the coalition"
    assert (sent["category"], sent["lang"], sent["author"]) == ("politics", "en", "Maria Keller")
    assert await page.locator("#views").text_content() == "1"
    # 6. What an editor would see.
    await page.screenshot(path=screenshot_path("demo-article.png"), full_page=True)

    # 2. A reload within the de-duplication window sends a view, which is not counted again.
    await page.reload()

    async def second_view() -> bool:
        return len(traffic.of("view")) == 2 and len(traffic.event_statuses) == len(traffic.events)

    await wait_until(second_view, timeout_s=TIMEOUT_MS / 1000)
    await wait_for_views_text(page, "1")
    assert len(traffic.of("view")) == 2
    assert (await article_stats(base))["views"] == 1

    # 4. Share links open the share site in a new tab at once; the click is counted.
    for channel in LINK_CHANNELS:
        link = page.locator(f'[data-share="{channel}"]')
        href = await link.get_attribute("href")
        assert href is not None
        started = asyncio.get_running_loop().time()
        async with context.expect_page(timeout=POPUP_TIMEOUT_MS) as popup_info:
            await link.click()
        popup = await popup_info.value
        await popup.wait_for_url(same_url(href), timeout=POPUP_TIMEOUT_MS)
        elapsed = asyncio.get_running_loop().time() - started
        print(f"{channel}: share site loaded {elapsed * 1000:.0f} ms after the click")
        assert await popup.title() == "share"
        await popup.close()
        assert len(traffic.of("share", channel)) == 1, channel
    assert len(traffic.share_sites) == len(LINK_CHANNELS), traffic.share_sites

    # Copy link: the page's address lands on the clipboard.
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    await page.bring_to_front()
    await page.locator('[data-share="copy_link"]').click()

    async def copied() -> bool:
        clipboard: str = await page.evaluate("navigator.clipboard.readText()")
        return clipboard == page.url

    await wait_until(copied, timeout_s=TIMEOUT_MS / 1000)

    # Print: window.print() called once, counted once (not again by beforeprint).
    await page.locator('[data-share="print"]').click()
    await wait_for_answered_events(traffic, len(traffic.of("engage")) + 2 + len(ALL_CHANNELS))
    assert await page.evaluate("window.__prints") == 1

    async def shares_counted() -> bool:
        total: int = (await article_stats(base))["shares_total"]
        return total >= len(ALL_CHANNELS)

    await wait_until(shares_counted, timeout_s=TIMEOUT_MS / 1000)
    await asyncio.sleep(SETTLE_S)
    body = await article_stats(base)
    assert body["views"] == 1
    assert {c: n for c, n in body["shares"].items() if n} == dict.fromkeys(ALL_CHANNELS, 1)
    assert body["shares_total"] == len(ALL_CHANNELS)

    # One beacon per click, as text/plain (sendBeacon: no CORS preflight), nothing else.
    assert Counter(e.get("channel") for e in traffic.of("share")) == Counter(ALL_CHANNELS)
    # (Besides them, an engage event when the page was reloaded: what was read before.)
    assert len(traffic.of("view")) + len(traffic.of("share")) == 2 + len(ALL_CHANNELS)
    assert len(traffic.events) - 2 - len(ALL_CHANNELS) == len(traffic.of("engage"))
    assert all(ct.startswith("text/plain") for ct in traffic.content_types), traffic.content_types
    assert traffic.event_statuses == [202] * len(traffic.events)
    # No cookies, no storage.
    assert await context.cookies() == []
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert traffic.page_errors == []
    assert traffic.blocked == []
    await context.close()


@pytest.mark.slow
async def test_listing_page_reads_all_counts_in_one_request(
    settings: Settings, aiohttp_server: AiohttpServer, browser: Browser
) -> None:
    listing = (ROOT / "examples" / "listing.html").read_text(encoding="utf-8")
    ids = re.findall(r'data-tracker-views="([^"]+)"', listing)
    assert len(ids) == 20
    assert len(set(ids)) == 20
    base = await serve(aiohttp_server, settings)  # dedup_window_s=0: every view counts
    # Article i has i + 1 views, so each number shown can only come from its own article.
    async with aiohttp.ClientSession(headers={"User-Agent": BROWSER_UA}) as session:
        for i, article_id in enumerate(ids):
            events = [{"type": "view", "article_id": article_id}] * (i + 1)
            async with session.post(f"{base}/api/v1/events", json={"events": events}) as r:
                assert r.status == 202, await r.text()
    expected = {article_id: str(i + 1) for i, article_id in enumerate(ids)}
    assert {k: str(v["views"]) for k, v in (await read_stats(base, *ids)).items()} == expected

    traffic = Traffic()
    context = await new_context(browser, traffic)
    page = await context.new_page()
    await page.goto(f"{base}/demo/listing")
    await page.wait_for_function(
        """() => [...document.querySelectorAll('[data-tracker-views]')]
                 .every(el => /^[0-9][0-9,]*$/.test(el.textContent))"""
    )
    await asyncio.sleep(SETTLE_S)

    shown = await page.eval_on_selector_all(
        "[data-tracker-views]",
        "els => els.map(el => [el.getAttribute('data-tracker-views'), el.textContent])",
    )
    assert dict(shown) == expected
    assert len(shown) == 20
    assert len(traffic.stats_requests) == 1, traffic.stats_requests
    (read,) = traffic.stats_requests
    assert urlsplit(read).path == "/api/v1/articles/stats"
    assert parse_qs(urlsplit(read).query)["ids"] == [",".join(ids)]
    assert traffic.events == []  # no data-article: no view
    await page.screenshot(path=screenshot_path("demo-listing.png"), full_page=True)
    assert traffic.page_errors == []
    assert traffic.blocked == []
    await context.close()


async def test_tracker_js_is_small_and_cacheable(client: Client) -> None:
    response = await client.get("/tracker.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    script = await response.read()
    # Every feature of the page snippet within 4 KB minified.
    assert len(script) <= 4 * 1024, f"tracker.js is {len(script)} bytes"
    text = script.decode()
    assert "__RESPECT_DNT__" not in text
    assert "cookie" not in text.lower()
    assert "localStorage" not in text
    assert "sessionStorage" not in text

    etag = response.headers.get("ETag")
    assert etag is not None
    assert re.fullmatch(r'(W/)?"[^"]+"', etag)
    cache_control = response.headers.get("Cache-Control", "")
    max_age = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control)
    assert max_age is not None, cache_control
    assert int(max_age.group(1)) >= 86_400, cache_control
    assert "no-store" not in cache_control
    assert "no-cache" not in cache_control

    again = await client.get("/tracker.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers.get("ETag") == etag

    changed = await client.get("/tracker.js", headers={"If-None-Match": '"something-else"'})
    assert changed.status == 200
    assert await changed.read() == script


async def test_tracker_js_integrity_is_published(client: Client) -> None:
    script = await (await client.get("/tracker.js")).read()
    response = await client.get("/tracker.js.sha384")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    published = (await response.text()).strip()
    digest = base64.b64encode(hashlib.sha384(script).digest()).decode()
    assert published == f"sha384-{digest}"
    # No inline code or eval is needed: nothing in it builds code from strings.
    text = script.decode()
    for needle in ("eval(", "new Function", 'setTimeout("', "innerHTML", "document.write"):
        assert needle not in text, needle
