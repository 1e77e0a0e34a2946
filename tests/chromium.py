"""Debian's Chromium for the browser tests, driven by Playwright (never a downloaded
browser): where it is, how it is started, and the fixture that starts it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")


def host_resolver_rules(*loopback_names: str) -> str:
    """Belt and braces: no name but loopback (and `loopback_names`, mapped to 127.0.0.1)
    resolves, whatever Chromium itself might fetch."""
    rules = [f"MAP {name} 127.0.0.1" for name in loopback_names]
    return "--host-resolver-rules=" + " , ".join([*rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"])


BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_ARGS = [*BASE_ARGS, host_resolver_rules()]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@asynccontextmanager
async def launched(*loopback_names: str) -> AsyncIterator[Browser]:
    """Headless Chromium; `loopback_names` (say news.example) resolve to 127.0.0.1, so a
    page served on a loopback port has a real site's name (scripts that skip localhost
    then run as on the site)."""
    from playwright.async_api import async_playwright

    require_chromium()
    args = [*BASE_ARGS, host_resolver_rules(*loopback_names)]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=args, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched() as chromium:
        yield chromium
