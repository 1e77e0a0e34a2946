"""What the bench's own servers share: run an app on 127.0.0.1:<argv[1]> on uvloop."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def run_ingest(handler: Handler, resource: CleanupContext) -> None:
    """A server whose ingest route is `handler`, with one resource opened around it."""
    app = web.Application()
    app.cleanup_ctx.append(resource)
    app.router.add_post("/api/v1/events", handler)
    run(app)


def run(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
