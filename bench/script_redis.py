"""The least a counter can do in Redis: one script call per request, one HINCRBY per
event in it. The peer that tracker's batches are measured against (issue 20)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from bench.serve import run_ingest

COUNT = """
for i = 1, #ARGV do
  redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
end
return #ARGV
"""
SCRIPT = web.AppKey("script", AsyncScript)
_decoder = msgspec.json.Decoder()


async def ingest(request: web.Request) -> web.Response:
    body = _decoder.decode(await request.read())
    events = body.get("events", [body])
    fields = [f"{event['article_id']}:{event['type']}" for event in events]
    await request.app[SCRIPT](keys=["naive:counts"], args=fields)
    return web.Response(
        body=b'{"accepted":%d}' % len(events), status=202, content_type="application/json"
    )


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = Redis.from_url(sys.argv[2], max_connections=64)
    app[SCRIPT] = redis.register_script(COUNT)
    yield
    await redis.aclose()


def main() -> None:
    run_ingest(ingest, redis_ctx)


if __name__ == "__main__":
    main()
