"""Naive design: one awaited Redis HINCRBY per request."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from bench.serve import run_ingest

REDIS = web.AppKey("redis", Redis)
_decoder = msgspec.json.Decoder()


async def ingest(request: web.Request) -> web.Response:
    body = _decoder.decode(await request.read())
    events = body.get("events", [body])
    for event in events:
        await request.app[REDIS].hincrby(
            "naive:counts", f"{event['article_id']}:{event['type']}", 1
        )
    return web.Response(
        body=b'{"accepted":%d}' % len(events), status=202, content_type="application/json"
    )


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    app[REDIS] = Redis.from_url(sys.argv[2], max_connections=64)
    yield
    await app[REDIS].aclose()


def main() -> None:
    run_ingest(ingest, redis_ctx)


if __name__ == "__main__":
    main()
