"""What the bench's own servers share: run an app on 127.0.0.1:<argv[1]> on uvloop."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


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
