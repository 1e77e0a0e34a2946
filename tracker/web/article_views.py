"""Editors describe an article (`PUT /api/v1/articles/{id}`) and see where its metadata
comes from (`GET /api/v1/articles/{id}`): parse, ask metadata_store.py, answer."""

from __future__ import annotations

import msgspec
from aiohttp import web

from tracker.core.errors import InvalidInput, UnsupportedMediaType
from tracker.core.metadata import ArticleMeta, Source
from tracker.events.models import field_of_error, validate_article_id
from tracker.pg.metadata_store import checked
from tracker.web.app_keys import SERVICES, SETTINGS
from tracker.web.bodies import read_body
from tracker.web.responses import json_response

# Strict: a publication time is text (RFC 3339), never a number taken for one.
_decoder = msgspec.json.Decoder(ArticleMeta)


def editors_meta(body: bytes) -> ArticleMeta:
    """An editor's metadata: InvalidInput names the field at fault."""
    try:
        meta = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(*field_of_error(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("body", f"malformed JSON: {exc}") from None
    return checked(meta)


async def put_article(request: web.Request) -> web.Response:
    """The editors' metadata of an article, replacing what editors said before; no event
    or page changes it. Fields left out fall back to the page's, then events'."""
    article_id = validate_article_id(request.match_info["article_id"])
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Content-Type", "send application/json")
    settings = request.app[SETTINGS]
    body = await read_body(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.read_timeout_s
    )
    meta = editors_meta(body)
    found = await request.app[SERVICES].article_metadata.set(
        article_id, meta, Source.EDITOR, replace=True
    )
    return json_response(found.as_json())


async def get_article(request: web.Request) -> web.Response:
    article_id = validate_article_id(request.match_info["article_id"])
    found = await request.app[SERVICES].article_metadata.describe(article_id)
    if found is None:
        raise web.HTTPNotFound()
    return json_response(found.as_json())
