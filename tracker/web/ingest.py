"""The handlers that record events: the JSON/beacon endpoint, the pixel and Plausible's
Events API."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from tracker.core.errors import (
    Ignored,
    OriginNotAllowed,
    TrackerError,
    UnsupportedMediaType,
)
from tracker.core.settings import Settings
from tracker.core.utc import day_of
from tracker.events.bots import BOT, HUMAN
from tracker.events.models import Event, parse_event_dict, parse_events
from tracker.events.plausible import parse_plausible, rules_of
from tracker.redis_side.readers import Visitor, address_id, client_of, reader_id
from tracker.web.app_keys import BOTS, CLOCK, METRICS, PROXIES, SERVICES, SETTINGS
from tracker.web.bodies import read_body, too_large
from tracker.web.middleware import EVENTS_IN_REQUEST, origin_allowed
from tracker.web.responses import accepted_response
from tracker.web.snippet import PIXEL_GIF

INGEST_CONTENT_TYPES: Final = ("application/json", "text/plain")
PIXEL_HEADERS: Final = {"Cache-Control": "no-store", "Content-Type": "image/gif"}
# The pixel's query parameters (short, for URLs in e-mails and AMP templates).
PIXEL_TEXT_PARAMS: Final = (
    ("channel", "c"),
    ("url", "u"),
    ("referrer", "r"),
    ("title", "ti"),
    ("id", "i"),
)
PIXEL_NUMBER_PARAMS: Final = (
    ("engaged_s", "e"),
    ("depth", "d"),
    ("prev_depth", "pd"),
    ("seq", "n"),
)


async def record_events(request: web.Request) -> int:
    """The events of a `POST /api/v1/events` stored (or not to be counted): how many.
    Answered by ingest_route.py."""
    settings = request.app[SETTINGS]
    request[EVENTS_IN_REQUEST] = 1  # until the body says how many
    _admit(request, settings)
    events = parse_events(await _body(request, settings), max_events=settings.max_batch_events)
    request[EVENTS_IN_REQUEST] = len(events)
    visitor = await visitor_of(request, len(events))
    if visitor is not None:
        await _record(request, events, visitor)
    return len(events)


async def plausible_event(request: web.Request) -> web.Response:
    """Plausible's Events API: one event, counted like a beacon, or acknowledged and
    not counted when it is of a kind tracker does not count."""
    app = request.app
    settings = app[SETTINGS]
    request[EVENTS_IN_REQUEST] = 1
    _admit(request, settings)
    body = await _body(request, settings)
    event = parse_plausible(body, rules_of(settings))
    if event is None:
        app[METRICS].events_ignored.labels(Ignored.NOT_COUNTED).inc()
    else:
        await _record_one(request, event)
    return accepted_response(1)


def _admit(request: web.Request, settings: Settings) -> None:
    """Refuse a body of another content type (415), or announced as too large (413)."""
    if request.content_type not in INGEST_CONTENT_TYPES:
        raise UnsupportedMediaType(
            "Content-Type", "send application/json, or text/plain (navigator.sendBeacon)"
        )
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise too_large(settings.max_body_bytes)


async def _record_one(request: web.Request, event: Event) -> None:
    """One event of a request, counted unless its reader is not to be (a bot, DNT)."""
    visitor = await visitor_of(request, 1)
    if visitor is not None:
        await _record(request, [event], visitor)


async def _record(request: web.Request, events: list[Event], visitor: Visitor) -> None:
    """Stored in Redis, but for engage events of agents that do not read (link-preview
    fetchers): those add to no counter, and are acknowledged and counted as not counted."""
    if visitor.agent.kind != HUMAN:
        readers = [event for event in events if event.type != "engage"]
        if len(readers) < len(events):
            ignored = request.app[METRICS].events_ignored.labels(Ignored.NOT_COUNTED)
            ignored.inc(len(events) - len(readers))
            events = readers
    if events:
        await request.app[SERVICES].batcher.record([(event, visitor) for event in events])


async def _body(request: web.Request, settings: Settings) -> bytes:
    return await read_body(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.read_timeout_s
    )


async def visitor_of(request: web.Request, events: int) -> Visitor | None:
    """The reader behind a request, or None when its events are not to be counted (a
    bot, or Do-Not-Track honoured): those are acknowledged, and counted in a metric."""
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    headers = request.headers
    if settings.respect_dnt and (headers.get("DNT") == "1" or headers.get("Sec-GPC") == "1"):
        metrics.events_ignored.labels(Ignored.DNT).inc(events)
        return None
    user_agent = headers.get("User-Agent", "")
    agent = app[BOTS].classify(user_agent)
    if agent.kind == BOT:
        metrics.events_ignored.labels(agent.reason or Ignored.CRAWLER).inc(events)
        return None
    # Several X-Forwarded-For lines are one list: a proxy may add its own line after the
    # client's, so the first line alone could be the client's invention.
    forwarded_for = ", ".join(headers.getall("X-Forwarded-For", ())) or None
    client = client_of(request.remote, forwarded_for, app[PROXIES])
    salts = app[SERVICES].salts
    day = day_of(app[CLOCK]())
    salt = salts.cached(day) or await salts.salt(day)
    return Visitor(
        reader_id(salt, client.address, user_agent),
        agent,
        address_id(salt, client.limited),
    )


async def pixel(request: web.Request) -> web.Response:
    """For pages without JavaScript: counts like a beacon, and always answers the GIF."""
    app = request.app
    query = request.query
    event: dict[str, Any] = {"type": query.get("t", "view"), "article_id": query.get("a")}
    for name, key in PIXEL_TEXT_PARAMS:
        if key in query:
            event[name] = query[key]
    for name, key in PIXEL_NUMBER_PARAMS:
        if key in query:
            value = query[key]
            # A number (ASCII digits: str.isdigit takes ² and ٣ too), or left as text for
            # validation to name the field.
            number = value.isascii() and value.isdigit() and len(value) < 10
            event[name] = int(value) if number else value
    if "depth" in event and "prev_depth" not in event and isinstance(event["depth"], int):
        # AMP's scroll trigger sends each quarter as it is reached: that quarter alone.
        event["prev_depth"] = max(0, event["depth"] - 25)
    referer = request.headers.get("Referer")
    if "u" not in query and referer:
        event["url"] = referer
    try:
        # A page elsewhere may embed the pixel: the allowlist holds for it as for
        # beacons. No Referer (e-mail clients, strict referrer policies) is let through.
        if referer and not origin_allowed(request, _origin_of(referer)):
            raise OriginNotAllowed("Referer", "the page is not on an allowed origin")
        (parsed,) = parse_event_dict(event)
        await _record_one(request, parsed)
    except TrackerError as exc:
        app[METRICS].pixel_errors.labels(exc.reason).inc()
    return web.Response(body=PIXEL_GIF, headers=PIXEL_HEADERS)


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}"
