"""The ceiling: a bare aiohttp handler that decodes the same JSON and answers 202."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bench.serve import run
from tracker.events.models import CHANNELS

_decoder = msgspec.json.Decoder()
_accepted = b'{"accepted":1}'


async def ingest(request: web.Request) -> web.Response:
    body = _decoder.decode(await request.read())
    count = len(body["events"]) if "events" in body else 1
    return web.Response(
        body=b'{"accepted":%d}' % count if count != 1 else _accepted,
        status=202,
        content_type="application/json",
    )


# An article's stats as tracker encodes them: the ceiling answers bodies of the same size.
_ZEROS = dict.fromkeys(CHANNELS, 0)
_ARTICLE = msgspec.json.encode(
    {
        "article_id": "news/2026/a1",
        "views": 0,
        "uniques": 0,
        "shares": _ZEROS,
        "shares_total": 0,
        "referrals": _ZEROS,
        "previews": _ZEROS,
        "engaged_readers": 0,
        "engaged_avg_s": 0.0,
        "read_through": 0.0,
        "read_depth": {"25": 0, "50": 0, "75": 0, "100": 0},
        "imported": {"views": 0, "shares_total": 0},
    }
)


async def stats(request: web.Request) -> web.Response:
    ids = request.query.get("ids")
    count = ids.count(",") + 1 if ids else 1
    body = _ARTICLE if not ids else b'{"articles":[' + b",".join([_ARTICLE] * count) + b"]}"
    return web.Response(body=body, content_type="application/json")


# The public most-read list as tracker answers it: ten articles with titles and URLs.
_POPULAR = msgspec.json.encode(
    {
        "period": "24h",
        "articles": [
            {
                "article_id": f"bench/{n}",
                "title": f"Story {n}",
                "url": f"https://news.example/bench/{n}",
                "views": 1000 - n,
            }
            for n in range(10)
        ],
    }
)


async def popular(request: web.Request) -> web.Response:
    return web.Response(body=_POPULAR, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/api/v1/events", ingest)
    app.router.add_get("/api/v1/articles/stats", stats)
    app.router.add_get(r"/api/v1/articles/{article_id:[\s\S]+}/stats", stats)
    app.router.add_get("/api/v1/popular", popular)
    run(app)


if __name__ == "__main__":
    main()
