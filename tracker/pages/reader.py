"""Reading articles' own pages for their metadata, the way Parse.ly's crawler does.

When counted events name an article's page on one of the site's origins, the flusher
offers the article here; in the background tracker fetches the page and takes the
metadata the page declares, only if the page says it is that article. Everything is
bounded: only the site's origins (a redirect elsewhere is refused), a body cap, a
timeout, a global rate, each article at most once per TRACKER_METADATA_REFRESH (after a
failure, RETRY_AFTER_FAILURE_S), and a queue that drops, and counts, what it cannot hold.
A page that cannot be read leaves the article's last verified metadata as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin

import aiohttp

from tracker import __version__
from tracker.core.errors import DatabaseUnavailable
from tracker.core.metadata import PageOutcome, Source, origin_of
from tracker.ops.metrics import Metrics
from tracker.pages.declared import read_page
from tracker.pg.db import Pool, database_unavailable_on_error
from tracker.pg.metadata_queries import DUE_PAGES, PAGE_CHECKED
from tracker.pg.metadata_store import MetadataStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1 << 20
TIMEOUT_S: Final = 10.0
MAX_REDIRECTS: Final = 3
# Pages fetched a second at most, in all, and at once.
FETCHES_PER_S: Final = 2.0
FETCHES_AT_ONCE: Final = 2
# Articles waiting to be looked at; more are dropped (and counted) until there is room.
QUEUE_LIMIT: Final = 1_000
# Articles asked about per PostgreSQL round trip.
DUE_BATCH: Final = 50
RETRY_AFTER_FAILURE_S: Final = 900.0
USER_AGENT: Final = f"tracker-metadata/{__version__} (reads the article's own metadata)"
HTML_TYPES: Final = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page as fetched (`outcome` None), or why it could not be."""

    outcome: PageOutcome | None
    url: str
    html: str = ""


class PageFetcher:
    """GETs a page of the site: no redirect off its origins, at most MAX_BODY_BYTES."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        site_origins: frozenset[str],
        *,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.session = session
        self.site_origins = site_origins
        self.timeout_s = timeout_s

    async def fetch(self, url: str) -> Fetched:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(url)
        except TimeoutError:
            return Fetched(PageOutcome.TIMEOUT, url)
        except (aiohttp.ClientError, OSError, ValueError):
            return Fetched(PageOutcome.UNREACHABLE, url)

    async def _follow(self, url: str) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            if origin_of(url) not in self.site_origins:
                return Fetched(PageOutcome.OFF_SITE, url)
            async with self.session.get(
                url, allow_redirects=False, headers={"User-Agent": USER_AGENT}
            ) as response:
                if response.status in (301, 302, 303, 307, 308):
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status != 200:
                    return Fetched(PageOutcome.HTTP_ERROR, url)
                if response.content_type not in HTML_TYPES:
                    return Fetched(PageOutcome.NOT_HTML, url)
                body = await _capped(response)
                if body is None:
                    return Fetched(PageOutcome.TOO_LARGE, url)
                return Fetched(None, url, body.decode(response.charset or "utf-8", "replace"))
        return Fetched(PageOutcome.HTTP_ERROR, url)


async def _capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES (read no further than that)."""
    if (response.content_length or 0) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 << 10):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


class PageReader:
    """The queue of articles offered, and the loop that reads their pages."""

    def __init__(
        self,
        pool: Pool,
        fetcher: PageFetcher,
        metrics: Metrics,
        *,
        refresh_s: float,
    ) -> None:
        self.pool = pool
        self.store = MetadataStore(pool)
        self.fetcher = fetcher
        self.metrics = metrics
        self.refresh_s = refresh_s
        self._waiting: OrderedDict[str, None] = OrderedDict()
        self._offered = asyncio.Event()
        self._next_fetch_at = 0.0

    def offer(self, views: Mapping[str, int]) -> None:
        """Articles whose page counted events named, most read first: those the queue has
        no room for are dropped (they are offered again by their next events)."""
        for article_id in sorted(views, key=lambda a: -views[a]):
            if article_id in self._waiting:
                continue
            if len(self._waiting) >= QUEUE_LIMIT:
                self.metrics.metadata_fetches.labels(PageOutcome.DROPPED).inc()
                continue
            self._waiting[article_id] = None
        if self._waiting:
            self._offered.set()

    async def run(self) -> None:
        """Until cancelled: take what was offered, ask PostgreSQL which are due (marking
        them checked, so no other flusher reads them too), read their pages."""
        gate = asyncio.Semaphore(FETCHES_AT_ONCE)
        reading: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._offered.wait()
                ids = [
                    self._waiting.popitem(last=False)[0]
                    for _ in range(min(DUE_BATCH, len(self._waiting)))
                ]
                if not self._waiting:
                    self._offered.clear()
                try:
                    due = await self._due(ids)
                except DatabaseUnavailable as exc:
                    log.warning("cannot ask which pages to read: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                for article_id, url in due:
                    await gate.acquire()
                    await self._pace()
                    task = asyncio.create_task(self._read(article_id, url, gate))
                    reading.add(task)
                    task.add_done_callback(reading.discard)
        finally:
            for task in reading:
                task.cancel()
            await asyncio.gather(*reading, return_exceptions=True)

    async def _pace(self) -> None:
        """At most FETCHES_PER_S pages a second."""
        now = time.monotonic()
        wait = self._next_fetch_at - now
        self._next_fetch_at = max(now, self._next_fetch_at) + 1.0 / FETCHES_PER_S
        if wait > 0:
            await asyncio.sleep(wait)

    async def _due(self, ids: list[str]) -> list[tuple[str, str]]:
        with database_unavailable_on_error():
            rows = await self.pool.fetch(DUE_PAGES, ids, self.refresh_s, RETRY_AFTER_FAILURE_S)
        return [(row["article_id"], row["url"]) for row in rows]

    async def _read(self, article_id: str, url: str, gate: asyncio.Semaphore) -> None:
        try:
            outcome = await self.read(article_id, url)
        except DatabaseUnavailable as exc:
            log.warning("could not store what the page of %s says: %s", article_id, exc)
            return
        finally:
            gate.release()
        self.metrics.metadata_fetches.labels(outcome).inc()

    async def read(self, article_id: str, url: str) -> PageOutcome:
        """Fetch one article's page and keep what it declares if it declares this article."""
        fetched = await self.fetcher.fetch(url)
        outcome = fetched.outcome
        if outcome is None:
            declared = read_page(fetched.html, fetched.url, self.fetcher.site_origins)
            if declared.article_ids == {article_id}:
                outcome = PageOutcome.VERIFIED
                await self.store.set(article_id, declared.meta, Source.PAGE, replace=True)
            else:
                outcome = PageOutcome.MISMATCH
        with database_unavailable_on_error():
            await self.pool.execute(PAGE_CHECKED, article_id, str(outcome))
        if outcome is not PageOutcome.VERIFIED:
            log.info(
                "the page of %s was not taken (%s): %s",
                article_id,
                outcome,
                fetched.url,
                extra={"event": "page_not_taken", "outcome": str(outcome)},
            )
        return outcome
