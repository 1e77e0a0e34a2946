"""`GET /api/v1/articles/{id}/stats` and `GET /api/v1/articles/stats?ids=`, the reads
every article and listing page makes, answered by routes that do themselves what the
middleware does for the others (CORS, JSON errors, request metrics) with header sets
built once. An answer the stats cache holds is made without waiting on anything, so
it takes no deadline and is not shed; a miss waits under the deadline and the shedding
of every other request (own_answers.ReadRoute.served)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tracker.core.settings import Settings
from tracker.events.models import parse_article_ids, validate_article_id
from tracker.ops.metrics import Metrics
from tracker.reports.listings import Listing
from tracker.reports.statscache import Cached
from tracker.web.app_keys import SERVICES
from tracker.web.own_answers import ReadRoute
from tracker.web.protocol import answers_itself

ARTICLE_ROUTE: Final = "/api/v1/articles/{article_id}/stats"
LISTING_ROUTE: Final = "/api/v1/articles/stats"
MAX_IDS: Final = 100


class StatsRoute(ReadRoute):
    """The two routes' handlers (`article`, `listing`)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(
            settings, metrics, cache_control=f"public, max-age={settings.stats_max_age_s}"
        )

    @answers_itself
    async def article(self, request: web.Request) -> web.Response:
        cache = request.app[SERVICES].stats_cache
        # The read of every article page, answered from memory: nothing checked that an
        # entry's existence does not already prove (only valid ids are ever stored).
        entry = cache.found(request.match_info["article_id"]) if cache.ttl_s > 0 else None
        if entry is not None:
            return self.held_answer(ARTICLE_ROUTE, request, entry)

        def held() -> Cached | None:
            article_id = validate_article_id(request.match_info["article_id"])
            return cache.found(article_id) if cache.ttl_s > 0 else None

        async def made(request: web.Request) -> Cached:
            return await cache.one(request.match_info["article_id"])

        return await self.served(ARTICLE_ROUTE, request, held, made)

    @answers_itself
    async def listing(self, request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        # A listing page asks for the same ids on every view: its answer is kept by the
        # query as sent, so a repeat is neither parsed nor assembled again.
        query = request.rel_url.raw_query_string

        def held() -> Listing | None:
            return services.listings.found(query)

        async def made(request: web.Request) -> Listing:
            ids = parse_article_ids(request.query.get("ids"), max_ids=MAX_IDS)
            return services.listings.keep(query, await services.stats_cache.get(ids))

        return await self.served(LISTING_ROUTE, request, held, made)
