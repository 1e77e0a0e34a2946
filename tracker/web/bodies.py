"""Reading a request's body within TRACKER_READ_TIMEOUT of its headers, each way it can
fail answered as the client's fault (413, 400, 408, 499), never a server error."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tracker.core.errors import ClientClosed, InvalidInput, ReadTimeout, TooLarge


async def read_body(request: web.Request, *, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body (a beacon's is all there already: no timer needed then)."""
    try:
        if request.content.is_eof():
            return await request.read()
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(max_bytes) from None
    except web.RequestPayloadError as exc:  # e.g. a body that is not the gzip it claims
        raise InvalidInput("body", f"cannot read the body: {exc}") from None
    except TimeoutError:
        raise ReadTimeout("body", f"not received within {timeout_s:g} s") from None
    except ConnectionError:
        raise ClientClosed("body", "the client closed the connection mid-body") from None


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge("body", f"at most {max_bytes} bytes")
