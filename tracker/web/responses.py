"""JSON answers, and the HTTP status of every reason a request is refused."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from aiohttp import web

from tracker.core.errors import RateLimited, Rejected, TrackerError, Unavailable

STATUS: Final = {
    Rejected.INVALID: 400,
    Rejected.UNAUTHORIZED: 401,
    Rejected.FORBIDDEN: 403,
    Rejected.ORIGIN: 403,
    Rejected.TIMEOUT: 408,
    Rejected.TOO_LARGE: 413,
    Rejected.UNSUPPORTED_MEDIA_TYPE: 415,
    Rejected.RATE_LIMITED: 429,
    Rejected.CLIENT_CLOSED: 499,
    Rejected.UNAVAILABLE: 503,
    Rejected.OVERLOADED: 503,
}
_encoder: Final = msgspec.json.Encoder()


class ErrorBody(msgspec.Struct, frozen=True):
    """Every refusal's body (its JSON Schema is the OpenAPI document's `Error`)."""

    error: str  # the reason, one of errors.Rejected
    detail: Any  # what the reason is about: `{"field": ..., "message": ...}` for input


class Accepted(msgspec.Struct, frozen=True):
    """What an ingest endpoint answers: the events stored (202)."""

    accepted: int


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_body(error: str, detail: Any) -> bytes:
    """Every error's body, `{"error", "detail"}`: the handlers', and what the connection
    answers before a handler runs (protocol.py)."""
    return _encoder.encode(ErrorBody(error, detail))


def error_response(
    status: int, error: str, detail: Any, *, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=error_body(error, detail),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def refusal(exc: TrackerError, *, retry_after_s: int) -> web.Response:
    """`{"error", "detail"}` naming the field (or, when unavailable, the dependency)."""
    if isinstance(exc, Unavailable):
        return error_response(
            STATUS[exc.reason],
            exc.error,
            {"dependency": exc.dependency, "message": exc.message},
            headers={"Retry-After": str(retry_after_s)},
        )
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif exc.reason is Rejected.UNAUTHORIZED:
        headers = {"WWW-Authenticate": 'Bearer realm="tracker"'}
    response = error_response(
        STATUS[exc.reason],
        exc.error,
        {"field": exc.field, "message": exc.message},
        headers=headers,
    )
    if exc.reason is Rejected.TIMEOUT:
        response.force_close()  # a client this slow gets no second request on it
    return response


_ACCEPTED_ONE: Final = _encoder.encode(Accepted(1))


def accepted_body(count: int) -> bytes:
    return _ACCEPTED_ONE if count == 1 else _encoder.encode(Accepted(count))


def accepted_response(count: int) -> web.Response:
    return web.Response(body=accepted_body(count), status=202, content_type="application/json")
