"""`POST /api/v1/events`, the request every page view sends, and `GET /p.gif`, its form
for pages without JavaScript, answered by routes that do themselves what the middleware
does for the others (CORS, shedding and the deadline, JSON errors, request metrics) with
header sets built once: no generic chain, and no per-request object a constant does."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.web.ingest import pixel, record_events
from tracker.web.middleware import (
    error_answer,
    guarded,
    may_omit_origin,
    not_allowed,
    origin_required,
)
from tracker.web.own_answers import CorsSets, Headers, frozen
from tracker.web.protocol import answers_itself, arrived_at
from tracker.web.responses import accepted_body

ROUTE: Final = "/api/v1/events"
PIXEL_ROUTE: Final = "/p.gif"
JSON: Final = {"Content-Type": "application/json"}
VARY: Final = frozen({"Vary": "Origin"})


class IngestRoute:
    """The route's handler (`answer`), holding the header sets its answers share."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.headers = CorsSets(settings, JSON)

    @answers_itself
    async def answer(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        arrived = arrived_at(request)
        origin = request.headers.get("Origin")
        cors: Headers | None = None
        try:
            if origin is not None:
                cors = self.headers.of(request, origin)
                if cors is None:
                    raise not_allowed(origin)
            elif not may_omit_origin(request):
                raise origin_required()
            count = await guarded(request, record_events, arrived)
            response = web.Response(
                body=accepted_body(count), status=202, headers=cors or self.headers.no_cors
            )
        except Exception as exc:
            response = error_answer(request, exc)
            response.headers.update(cors or VARY)
        self.metrics.observe_request(ROUTE, "POST", response.status, loop.time() - arrived)
        return response


class PixelRoute:
    """`GET /p.gif`'s handler (`answer`): the GIF always (ingest.pixel), but for a 503
    when the loop lags or the request runs past its deadline."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @answers_itself
    async def answer(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        arrived = arrived_at(request)
        try:
            response = await guarded(request, pixel, arrived)
        except Exception as exc:
            response = error_answer(request, exc)
        seconds = loop.time() - arrived
        self.metrics.observe_request(PIXEL_ROUTE, request.method, response.status, seconds)
        return response
