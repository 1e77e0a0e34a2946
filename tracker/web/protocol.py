"""The HTTP connection itself: JSON errors for what aiohttp's parser refuses before any
handler runs, and a time limit on receiving a request's head, so a client that trickles
its headers (or sends nothing) cannot hold a connection for long.

aiohttp answers a request it cannot parse with a plain-text page, and has no limit on
the time a request head may take; both are mended here, in the request handler made per
connection by a `web.Server` (aiohttp's documented low-level server) that serves the
app's own handler. One thing aiohttp offers no public way to see: whether a request head
is parsed and waiting. `_parsed_heads` alone reads it (aiohttp's range is pinned in
pyproject.toml, and tests/test_http_limits.py fails loudly when that changes).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.web.responses import error_body, error_response

log = logging.getLogger(__name__)

# A request line must hold every request SPEC allows: the stats of 100 ids of 128
# characters, each character percent-encoded (3 bytes) at worst, plus the path.
MAX_REQUEST_LINE_BYTES: Final = 64 * 1024
# One header (a User-Agent, a Referer): browsers send far less.
MAX_HEADER_BYTES: Final = 8190
UNPARSED_ROUTE: Final = "unparsed"
LINGERING_S: Final = 1.0
# Set on a handler that does what the middleware does (CORS, shedding, errors, request
# metrics) itself, with headers built once: the routes every article page takes.
ANSWERS_ITSELF: Final = "tracker_answers_itself"
H = TypeVar("H", bound=Callable[..., Any])


def answers_itself(handler: H) -> H:
    """Marks a handler that answers CORS, shedding, errors and metrics by itself."""
    setattr(handler, ANSWERS_ITSELF, True)
    return handler


def answers_by_itself(handler: object) -> bool:
    return getattr(handler, ANSWERS_ITSELF, False) is True


def _json_error(status: int, error: str, field: str, message: str) -> web.Response:
    response = error_response(status, error, {"field": field, "message": message})
    response.force_close()
    return response


def _refusal(exc: BaseException | None, status: int, max_line_bytes: int) -> web.Response:
    if isinstance(exc, LineTooLong):
        if exc.args[1] == max_line_bytes:
            return _json_error(
                414, "too_large", "url", f"the request line is over {max_line_bytes} bytes"
            )
        return _json_error(431, "too_large", "headers", f"a header is over {exc.args[1]} bytes")
    if isinstance(exc, HttpProcessingError) or status < 500:
        message = exc.message if isinstance(exc, HttpProcessingError) else "malformed request"
        return _json_error(status, "bad_request", "request", message)
    return _json_error(500, "internal", "request", "unexpected error; it was logged")


def _parsed_heads(handler: RequestHandler) -> tuple[int, bool]:
    """(request heads parsed and waiting, whether one is being answered): aiohttp's own
    state, read here only."""
    return len(handler._messages), handler._request_in_progress


class TrackerRequestHandler(RequestHandler):
    """aiohttp's handler of one connection, with JSON errors and a deadline on heads."""

    def __init__(
        self, manager: TrackerServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._tracker = manager
        self._tracker_loop = loop
        self._head_deadline: asyncio.TimerHandle | None = None
        # When each request head waiting to be handled arrived (loop time), in order.
        self.arrivals: deque[float] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is not kept either

    def data_received(self, data: bytes) -> None:
        waiting, _ = _parsed_heads(self)
        super().data_received(data)
        parsed, answering = _parsed_heads(self)
        if parsed > waiting:
            now = self._tracker_loop.time()
            if parsed == waiting + 1:  # one head a packet, as nearly every client sends
                self.arrivals.append(now)
            else:
                self.arrivals.extend([now] * (parsed - waiting))
        if parsed:  # a whole request head has arrived
            self._disarm()
        elif data and self._head_deadline is None and not answering:
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_deadline = self._tracker_loop.call_later(
            self._tracker.read_timeout_s, self._head_timed_out
        )

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        parsed, answering = _parsed_heads(self)
        if parsed or answering or self.transport is None:
            return
        timeout = self._tracker.read_timeout_s
        body = error_body(
            "timeout", {"field": "headers", "message": f"not received within {timeout:g} s"}
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self._tracker.metrics.observe_request(UNPARSED_ROUTE, "unknown", 408, timeout)
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What the parser refused: the client's doing, so no traceback in the log."""
        arrived_at(request)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has begun; no error answer can follow it")
        if status >= 500:
            log.error("error answering a request from %s", request.remote, exc_info=exc)
        else:
            log.debug("refused a request from %s: %s", request.remote, exc)
        response = _refusal(exc, status, self._tracker.max_line_bytes)
        self._tracker.metrics.observe_request(UNPARSED_ROUTE, "unknown", response.status, 0.0)
        return response


def arrived_at(request: BaseRequest) -> float:
    """When the request's head arrived (loop time): its wait in this process counts in
    its latency. Requests served otherwise (tests' own servers) arrive now."""
    protocol = request.protocol
    if isinstance(protocol, TrackerRequestHandler) and protocol.arrivals:
        return protocol.arrivals.popleft()
    return asyncio.get_running_loop().time()


class TrackerServer(web.Server):
    """The app's handler served over TrackerRequestHandlers, with tracker's limits: request
    line and header sizes, keep-alive, lingering, and the time to receive a head."""

    def __init__(
        self,
        app: web.Application,
        app_server: web.Server,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._handler_args: dict[str, Any] = {
            "access_log": None,
            "keepalive_timeout": settings.keepalive_timeout_s,
            "max_line_size": MAX_REQUEST_LINE_BYTES,
            "max_field_size": MAX_HEADER_BYTES,
            # After answering a request whose body was not read (refused, or too slow),
            # aiohttp reads the rest before closing, so that the client sees the answer;
            # 10 s by default, which a trickling client would fill.
            "lingering_time": LINGERING_S,
        }
        super().__init__(
            self._dispatch, request_factory=app_server.request_factory, **self._handler_args
        )
        self._app = app
        self._app_handler = app_server.request_handler
        self.read_timeout_s = settings.read_timeout_s
        self.max_line_bytes = MAX_REQUEST_LINE_BYTES
        self.metrics = metrics

    async def _dispatch(self, request: BaseRequest) -> web.StreamResponse:
        """A route that answers by itself is called straight from the router: aiohttp's
        middleware chain, which it would pass through untouched, cost about a tenth of
        such a request. The rest (and any request that waits on `Expect: 100-continue`,
        which the app's own path answers) go the app's way, routed again there."""
        app_request = cast(web.Request, request)  # made by the app's request factory
        if request.headers.get(hdrs.EXPECT) is None:
            match_info = await self._app.router.resolve(app_request)
            if answers_by_itself(match_info.handler):
                match_info.add_app(self._app)
                match_info.freeze()
                # What Application._handle sets before calling a handler: the request's
                # route, and through it request.app.
                app_request._match_info = match_info
                return await match_info.handler(app_request)
        return await self._app_handler(app_request)

    def __call__(self) -> RequestHandler:
        return TrackerRequestHandler(self, loop=asyncio.get_running_loop(), **self._handler_args)
