"""Naive design: one Postgres upsert per event, awaited in the request."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import asyncpg
import msgspec
from aiohttp import web

from bench.serve import run_ingest

POOL = web.AppKey("pool", asyncpg.Pool)
_decoder = msgspec.json.Decoder()
UPSERT = """
INSERT INTO naive_counts (article_id, metric, count) VALUES ($1, $2, 1)
ON CONFLICT (article_id, metric) DO UPDATE SET count = naive_counts.count + 1
"""


async def ingest(request: web.Request) -> web.Response:
    body = _decoder.decode(await request.read())
    events = body.get("events", [body])
    for event in events:
        await request.app[POOL].execute(UPSERT, event["article_id"], event["type"])
    return web.Response(
        body=b'{"accepted":%d}' % len(events), status=202, content_type="application/json"
    )


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(sys.argv[2], min_size=8, max_size=32)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS naive_counts (article_id text, metric text, count bigint,"
        " PRIMARY KEY (article_id, metric))"
    )
    app[POOL] = pool
    yield
    await pool.close()


def main() -> None:
    run_ingest(ingest, pool_ctx)


if __name__ == "__main__":
    main()
