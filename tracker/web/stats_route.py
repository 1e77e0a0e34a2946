"""`GET /api/v1/articles/{id}/stats` and `GET /api/v1/articles/stats?ids=`, the reads
every article and listing page makes, answered by routes that do themselves what the
middleware does for the others (CORS, JSON errors, request metrics) with header sets
built once. An answer the stats cache holds is made without waiting on anything, so
it takes no deadline and is not shed (it costs less than a refusal would); a miss
waits under the deadline and the shedding of every other request (middleware.guarded)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.models import parse_article_ids, validate_article_id
from tracker.ops.metrics import Metrics
from tracker.reports.listings import Listing
from tracker.reports.statscache import Cached
from tracker.web.app_keys import SERVICES
from tracker.web.header_sets import CorsSets, Headers
from tracker.web.middleware import answers_itself, error_answer, guarded
from tracker.web.protocol import arrived_at

ARTICLE_ROUTE: Final = "/api/v1/articles/{article_id}/stats"
LISTING_ROUTE: Final = "/api/v1/articles/stats"
MAX_IDS: Final = 100
T = TypeVar("T")
_Handler = Callable[[web.Request], Awaitable[T]]


class StatsRoute:
    """The two routes' handlers (`article`, `listing`) and the header sets they share."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        cache_control = f"public, max-age={settings.stats_max_age_s}"
        self.headers = CorsSets(
            settings, {"Content-Type": "application/json", "Cache-Control": cache_control}
        )
        self.not_modified = CorsSets(settings, {"Cache-Control": cache_control})

    @answers_itself
    async def article(self, request: web.Request) -> web.Response:
        arrived = arrived_at(request)
        try:
            article_id = validate_article_id(request.match_info["article_id"])
            cache = request.app[SERVICES].stats_cache
            entry = cache.found(article_id) if cache.ttl_s > 0 else None
            if entry is None:
                entry = await guarded(request, _one(article_id), arrived)
            response = self._answer(request, entry.body, entry.etag)
        except Exception as exc:
            response = self._refusal(request, exc)
        self._observe(ARTICLE_ROUTE, request, response, arrived)
        return response

    @answers_itself
    async def listing(self, request: web.Request) -> web.Response:
        arrived = arrived_at(request)
        try:
            listings = request.app[SERVICES].listings
            # A listing page asks for the same ids on every view: its answer is kept by
            # the query as sent, so a repeat is neither parsed nor assembled again.
            query = request.rel_url.raw_query_string
            listing = listings.found(query)
            if listing is None:
                listing = await guarded(request, _listing(query), arrived)
            response = self._answer(request, listing.body, listing.etag)
        except Exception as exc:
            response = self._refusal(request, exc)
        self._observe(LISTING_ROUTE, request, response, arrived)
        return response

    def _cors(self, request: web.Request, sets: CorsSets) -> Headers:
        origin = request.headers.get("Origin")
        found = sets.of(request, origin) if origin is not None else None
        # A page of an origin not allowed is answered too, without CORS headers:
        # readable by non-browser clients only.
        return found or sets.no_cors

    def _answer(self, request: web.Request, body: bytes, etag: str) -> web.Response:
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and etag in {tag.strip() for tag in if_none_match.split(",")}:
            response = web.Response(status=304, headers=self._cors(request, self.not_modified))
        else:
            response = web.Response(body=body, headers=self._cors(request, self.headers))
        response.headers["ETag"] = etag
        return response

    def _refusal(self, request: web.Request, exc: Exception) -> web.Response:
        response = error_answer(request, exc)
        headers = self._cors(request, self.headers)
        response.headers.update(
            (name, value) for name, value in headers.items() if name != "Cache-Control"
        )
        return response

    def _observe(
        self, route: str, request: web.Request, response: web.Response, arrived: float
    ) -> None:
        seconds = asyncio.get_running_loop().time() - arrived
        self.metrics.observe_request(route, request.method, response.status, seconds)


def _one(article_id: str) -> _Handler[Cached]:
    async def one(request: web.Request) -> Cached:
        return await request.app[SERVICES].stats_cache.one(article_id)

    return one


def _listing(query: str) -> _Handler[Listing]:
    async def made(request: web.Request) -> Listing:
        services = request.app[SERVICES]
        ids = parse_article_ids(request.query.get("ids"), max_ids=MAX_IDS)
        return services.listings.keep(query, await services.stats_cache.get(ids))

    return made
