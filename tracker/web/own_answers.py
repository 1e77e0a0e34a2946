"""What the routes every article page takes share, answering by themselves what the
middleware does for the others (ingest_route.py, stats_route.py, most_read.py): header
sets built once (an answer's CORS headers for its page's origin, kept per allowed
origin), and for the reads the answer with its ETag, a refusal, the request's metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.web.middleware import cors_headers, error_answer, guarded, origin_allowed
from tracker.web.protocol import arrived_at

Headers = CIMultiDictProxy[str]


def frozen(headers: dict[str, str]) -> Headers:
    return CIMultiDictProxy(CIMultiDict(headers))


class CorsSets:
    """`base` plus the CORS headers of an answer to a page of an allowed origin; `base`
    plus Vary alone otherwise (every answer on these paths varies with Origin)."""

    def __init__(self, settings: Settings, base: dict[str, str]) -> None:
        self.base = base
        self.no_cors: Final = frozen({**base, "Vary": "Origin"})
        self.any_origin: Headers | None = None
        if "*" in settings.allowed_origins:
            self.any_origin = frozen({**base, **cors_headers("*")})
        # Built once for the configured origins only: the service's own origin is judged
        # by each request's Host, which a client writes (middleware.origin_allowed).
        self._by_origin = {
            origin: frozen({**base, **cors_headers(origin)}) for origin in settings.allowed_origins
        }

    def of(self, request: web.Request, origin: str) -> Headers | None:
        """The headers for a page of `origin`; None if it may not call this path."""
        if self.any_origin is not None:
            return self.any_origin
        kept = self._by_origin.get(origin)
        if kept is not None:
            return kept
        if not origin_allowed(request, origin):
            return None
        return frozen({**self.base, **cors_headers(origin)})


class Answer(Protocol):
    """A read's answer as kept in memory: its body and ETag."""

    @property
    def body(self) -> bytes: ...

    @property
    def etag(self) -> str: ...


class ReadRoute:
    """A public read's answers: JSON with `cache_control`, an ETag (304 when the client
    holds it), CORS for allowed pages; refusals as JSON errors; each request counted."""

    def __init__(self, settings: Settings, metrics: Metrics, *, cache_control: str) -> None:
        self.metrics = metrics
        base = {"Cache-Control": cache_control}
        self.headers = CorsSets(settings, {"Content-Type": "application/json", **base})
        self.not_modified = CorsSets(settings, base)

    async def served(
        self,
        route: str,
        request: web.Request,
        held: Callable[[], Answer | None],
        made: Callable[[web.Request], Awaitable[Answer]],
    ) -> web.Response:
        """The answer `held` in memory, waiting on nothing (no deadline, not shed: it costs
        less than a refusal would), else the one `made` under the deadline and shedding
        of every other request; refusals as JSON errors; the request counted."""
        arrived = arrived_at(request)
        try:
            answer = held()
            if answer is None:
                answer = await guarded(request, made, arrived)
            response = self.respond(request, answer.body, answer.etag)
        except Exception as exc:
            response = self.refusal(request, exc)
        self.observe(route, request, response, arrived)
        return response

    def held_answer(self, route: str, request: web.Request, answer: Answer) -> web.Response:
        """`served` for an answer already in hand: the read every page makes, kept short."""
        arrived = arrived_at(request)
        response = self.respond(request, answer.body, answer.etag)
        self.observe(route, request, response, arrived)
        return response

    def _cors(self, request: web.Request, sets: CorsSets) -> Headers:
        origin = request.headers.get("Origin")
        found = sets.of(request, origin) if origin is not None else None
        # A page of an origin not allowed is answered too, without CORS headers:
        # readable by non-browser clients only.
        return found or sets.no_cors

    def respond(self, request: web.Request, body: bytes, etag: str) -> web.Response:
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and etag in {tag.strip() for tag in if_none_match.split(",")}:
            response = web.Response(status=304, headers=self._cors(request, self.not_modified))
        else:
            response = web.Response(body=body, headers=self._cors(request, self.headers))
        response.headers["ETag"] = etag
        return response

    def refusal(self, request: web.Request, exc: Exception) -> web.Response:
        response = error_answer(request, exc)
        headers = self._cors(request, self.headers)
        response.headers.update(
            (name, value) for name, value in headers.items() if name != "Cache-Control"
        )
        return response

    def observe(
        self, route: str, request: web.Request, response: web.Response, arrived: float
    ) -> None:
        seconds = asyncio.get_running_loop().time() - arrived
        self.metrics.observe_request(route, request.method, response.status, seconds)
