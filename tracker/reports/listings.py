"""Answers to a listing page's stats read (`GET /api/v1/articles/stats?ids=…`), kept per
list of ids: a listing page asks for the same hundred ids on every view."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Final

import msgspec

from tracker.reports.statscache import Cached, StatsCache

# Lists kept per process; past this the oldest go (anyone may send new lists).
MAX_LISTINGS: Final = 256


class Listing(msgspec.Struct, frozen=True, gc=False):
    body: bytes
    etag: str
    # Monotonic: past this the answer is made again (at most the cache's time after it
    # was made, and never past the soonest expiry of the entries it was made of).
    refresh_at: float


def listing_body(entries: Sequence[Cached]) -> bytes:
    # One join of the parts: a listing's 60 kB is copied once, not once per "+".
    parts = [b'{"articles":[']
    for entry in entries:
        parts += (entry.body, b",")
    parts[-1] = b"]}" if entries else b'{"articles":[]}'
    return b"".join(parts)


def listing_etag(entries: Sequence[Cached]) -> str:
    digest = hashlib.blake2b(b"".join(e.digest for e in entries), digest_size=12).hexdigest()
    return f'"{digest}"'


class Listings:
    """An answer is reused, without parsing its ids again, for the stats cache's time
    (TRACKER_STATS_CACHE) from when it was made, then made again from the cache's
    entries (which refreshes those due). Its own time, not its articles': a hundred
    articles refreshed each at its own moment would change it a hundred times a second.
    It is never served past the soonest expiry of the entries it was made of."""

    def __init__(self, cache: StatsCache, *, max_listings: int = MAX_LISTINGS) -> None:
        self.cache = cache
        self.max_listings = max_listings
        self._listings: dict[str, Listing] = {}

    def found(self, query: str) -> Listing | None:
        listing = self._listings.get(query)
        if listing is None or listing.refresh_at <= time.monotonic():
            return None
        return listing

    def keep(self, query: str, entries: Sequence[Cached]) -> Listing:
        soonest_expiry = min(entry.expires for entry in entries)
        listing = Listing(
            body=listing_body(entries),
            etag=listing_etag(entries),
            refresh_at=min(time.monotonic() + self.cache.ttl_s, soonest_expiry),
        )
        if self.cache.ttl_s > 0 and len(query) < 1 << 16:
            self._listings.pop(query, None)
            self._listings[query] = listing
            while len(self._listings) > self.max_listings:
                del self._listings[next(iter(self._listings))]
        return listing
