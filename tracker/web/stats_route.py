"""`GET /api/v1/articles/{id}/stats` and `GET /api/v1/articles/stats?ids=`, the reads
every article and listing page makes, answered by routes that do themselves what the
middleware does for the others (CORS, JSON errors, request metrics) with header sets
built once. An answer the stats cache holds is made without waiting on anything, so
it takes no deadline and is not shed (it costs less than a refusal would); a miss
waits under the deadline and the shedding of every other request (middleware.guarded)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.models import parse_article_ids, validate_article_id
from tracker.ops.metrics import Metrics
from tracker.reports.listings import Listing
from tracker.reports.statscache import Cached
from tracker.web.app_keys import SERVICES
from tracker.web.middleware import answers_itself, guarded
from tracker.web.own_answers import ReadRoute
from tracker.web.protocol import arrived_at

ARTICLE_ROUTE: Final = "/api/v1/articles/{article_id}/stats"
LISTING_ROUTE: Final = "/api/v1/articles/stats"
MAX_IDS: Final = 100
T = TypeVar("T")
_Handler = Callable[[web.Request], Awaitable[T]]


class StatsRoute(ReadRoute):
    """The two routes' handlers (`article`, `listing`)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(
            settings, metrics, cache_control=f"public, max-age={settings.stats_max_age_s}"
        )

    @answers_itself
    async def article(self, request: web.Request) -> web.Response:
        arrived = arrived_at(request)
        try:
            article_id = validate_article_id(request.match_info["article_id"])
            cache = request.app[SERVICES].stats_cache
            entry = cache.found(article_id) if cache.ttl_s > 0 else None
            if entry is None:
                entry = await guarded(request, _one(article_id), arrived)
            response = self.respond(request, entry.body, entry.etag)
        except Exception as exc:
            response = self.refusal(request, exc)
        self.observe(ARTICLE_ROUTE, request, response, arrived)
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
            response = self.respond(request, listing.body, listing.etag)
        except Exception as exc:
            response = self.refusal(request, exc)
        self.observe(LISTING_ROUTE, request, response, arrived)
        return response


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
