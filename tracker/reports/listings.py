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


class Listing(msgspec.Struct, frozen=True):
    ids: list[str]
    kept: list[Cached | None]  # the cache's own entries the answer was made of
    body: bytes
    etag: str
    refresh_at: float  # the soonest of its members'


def listing_body(entries: Sequence[Cached]) -> bytes:
    return b'{"articles":[' + b",".join(entry.body for entry in entries) + b"]}"


def listing_etag(entries: Sequence[Cached]) -> str:
    digest = hashlib.blake2b(b"".join(e.digest for e in entries), digest_size=12).hexdigest()
    return f'"{digest}"'


class Listings:
    """An answer is reused, without parsing its ids again, while each of its articles'
    entries is still the one it was made of and none is due for a refresh; otherwise
    it is made again from the stats cache (which refreshes what is due)."""

    def __init__(self, cache: StatsCache, *, max_listings: int = MAX_LISTINGS) -> None:
        self.cache = cache
        self.max_listings = max_listings
        self._listings: dict[str, Listing] = {}

    def found(self, query: str) -> Listing | None:
        listing = self._listings.get(query)
        if listing is None or listing.refresh_at <= time.monotonic():
            return None
        stored = self.cache.stored
        for article_id, kept in zip(listing.ids, listing.kept, strict=True):
            if stored(article_id) is not kept:
                return None
        return listing

    def keep(self, query: str, ids: list[str], entries: Sequence[Cached]) -> Listing:
        listing = Listing(
            ids=ids,
            kept=[self.cache.stored(article_id) for article_id in ids],
            body=listing_body(entries),
            etag=listing_etag(entries),
            refresh_at=min(entry.refresh_at for entry in entries),
        )
        if self.cache.ttl_s > 0 and len(query) < 1 << 16:
            self._listings.pop(query, None)
            self._listings[query] = listing
            while len(self._listings) > self.max_listings:
                del self._listings[next(iter(self._listings))]
        return listing
