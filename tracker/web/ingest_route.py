"""`POST /api/v1/events`, the request every page view sends, answered by a route that
does itself what the middleware does for the others (CORS, shedding and the deadline,
JSON errors, request metrics) with header sets built once: no generic chain, and no
per-request object a constant does."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.web.ingest import record_events
from tracker.web.middleware import (
    cors_headers,
    error_answer,
    guarded,
    may_omit_origin,
    not_allowed,
    origin_allowed,
    origin_required,
)
from tracker.web.protocol import arrived_at
from tracker.web.responses import accepted_body

ROUTE: Final = "/api/v1/events"
# Header sets kept per allowed origin (the configured ones, and the site's own names).
MAX_KEPT_ORIGINS: Final = 64
Headers = CIMultiDictProxy[str]


def _frozen(headers: dict[str, str]) -> Headers:
    return CIMultiDictProxy(CIMultiDict(headers))


# Every answer on this path varies with Origin, so that caches keep them apart.
NO_ORIGIN: Final = _frozen({"Content-Type": "application/json", "Vary": "Origin"})
VARY: Final = _frozen({"Vary": "Origin"})


class IngestRoute:
    """The route's handler (`answer`), holding the header sets its answers share."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.any_origin: Headers | None = None
        if "*" in settings.allowed_origins:
            self.any_origin = _frozen({"Content-Type": "application/json", **cors_headers("*")})
        self._by_origin: dict[str, Headers] = {}

    def _allowed(self, request: web.Request, origin: str) -> Headers:
        """The headers of an answer to a page of `origin` (OriginNotAllowed if it may not
        send events)."""
        if self.any_origin is not None:
            return self.any_origin
        kept = self._by_origin.get(origin)
        if kept is not None:
            return kept
        if not origin_allowed(request, origin):
            raise not_allowed(origin)
        headers = _frozen({"Content-Type": "application/json", **cors_headers(origin)})
        if len(self._by_origin) < MAX_KEPT_ORIGINS:
            self._by_origin[origin] = headers
        return headers

    async def answer(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        arrived = arrived_at(request)
        origin = request.headers.get("Origin")
        cors: Headers | None = None
        try:
            if origin is not None:
                cors = self._allowed(request, origin)
            elif not may_omit_origin(request):
                raise origin_required()
            count = await guarded(request, record_events, arrived)
            response = web.Response(
                body=accepted_body(count), status=202, headers=cors or NO_ORIGIN
            )
        except Exception as exc:
            response = error_answer(request, exc)
            response.headers.update(cors or VARY)
        self.metrics.observe_request(ROUTE, "POST", response.status, loop.time() - arrived)
        return response
