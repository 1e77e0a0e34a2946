"""Events as the website sends them: decoding and validation with msgspec."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from tracker.core.errors import InvalidInput, TooLarge
from tracker.core.metadata import (
    ARTICLE_ID_PATTERN,
    ARTICLE_ID_RE,
    ARTICLE_ID_RULE,
    NO_NUL,
    ArticleId,
    MetaFields,
    Url,
    as_dict,
    cleaned,
    stored_url,
)

__all__ = [
    "ARTICLE_ID_PATTERN",
    "ARTICLE_ID_RE",
    "ARTICLE_ID_RULE",
    "CHANNELS",
    "NO_NUL",
    "Event",
    "EventBatch",
    "Url",
    "parse_article_ids",
    "parse_event_dict",
    "parse_events",
    "stored_url",
    "validate_article_id",
]

Channel = Literal[
    "facebook",
    "twitter",
    "telegram",
    "whatsapp",
    "vk",
    "linkedin",
    "reddit",
    "email",
    "copy_link",
    "print",
    "other",
]
CHANNELS: Final = get_args(Channel)
# A client's own id for an event: a retry with the same id is not counted again.
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
# Engagement: seconds visible and active since the page view's last engage event (a
# page counts at most 30 minutes), and the deepest quarter of the article body reached.
MAX_ENGAGED_S: Final = 1800
EngagedSeconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_ENGAGED_S)]
# A quarter: 0, 25, 50, 75 or 100.
Depth = Annotated[int, msgspec.Meta(ge=0, le=100, multiple_of=25)]
QUARTERS: Final = (25, 50, 75, 100)
EngageSeq = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class Event(MetaFields, frozen=True, omit_defaults=True, kw_only=True):
    """One event; its metadata fields (MetaFields) say what the sender claims of the
    article, and become the article's only as metadata.py allows."""

    type: Literal["view", "share", "engage"]
    article_id: ArticleId
    channel: Channel | None = None
    referrer: Url | None = None
    id: EventId | None = None
    # engage events only
    engaged_s: EngagedSeconds = 0
    depth: Depth = 0
    prev_depth: Depth = 0  # the depth the page view's earlier engage events sent
    seq: EngageSeq = 0  # 0: the page view's first engage event (an engaged reader)

    @property
    def metric(self) -> str:
        """The counter this event adds to first: `view`, `share:<channel>`, `engaged_s`."""
        if self.type == "engage":
            return "engaged_s"
        return "view" if self.type == "view" else f"share:{self.channel}"

    def quarters(self) -> tuple[int, ...]:
        """The quarters of the body first reached since the page view's last engage event."""
        return tuple(q for q in QUARTERS if self.prev_depth < q <= self.depth)

    def metadata(self) -> dict[str, str]:
        """What the event says of its article (title, url, ...), cleaned, as text."""
        if not (self.title or self.url or self.category or self.lang or self.author) and (
            self.group is None and self.published is None
        ):
            return {}  # most events: nothing to clean
        return as_dict(cleaned(self))


class EventBatch(msgspec.Struct, frozen=True):
    events: list[Event]


_PATH_RE: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$")
# The field a message is about when msgspec names it rather than its path.
_NAMED_RE: Final = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")


def field_of_error(error: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec says "Expected `str` - at `$.events[0].type`": split it into field and message."""
    text = str(error)
    match = _PATH_RE.search(text)
    message = text if match is None else text[: match.start()]
    path = "" if match is None else match.group("path").lstrip(".")
    named = _NAMED_RE.search(message)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    return path or "body", message


_decoder: Final = msgspec.json.Decoder()


# Not strict: a JSON number written 25.0 is the integer 25, as JSON Schema has it.
_event_decoder: Final = msgspec.json.Decoder(Event, strict=False)
_batch_decoder: Final = msgspec.json.Decoder(EventBatch, strict=False)


def _checked(events: list[Event], prefix: str) -> list[Event]:
    for index, event in enumerate(events):
        if not ARTICLE_ID_RE.fullmatch(event.article_id):
            raise InvalidInput(prefix.format(index) + "article_id", ARTICLE_ID_RULE)
        if event.group is not None and not ARTICLE_ID_RE.fullmatch(event.group):
            raise InvalidInput(prefix.format(index) + "group", ARTICLE_ID_RULE)
        if event.type == "share" and event.channel is None:
            raise InvalidInput(
                prefix.format(index) + "channel",
                f"required for a share: one of {', '.join(CHANNELS)}",
            )
        if event.type == "engage":
            _check_engage(event, prefix.format(index))
    return events


def _check_engage(event: Event, prefix: str) -> None:
    # prev_depth past depth is not an error: nothing new was reached (quarters() is empty).
    if event.engaged_s == 0 and event.depth == 0:
        raise InvalidInput(prefix + "engaged_s", "an engage event carries engaged_s or depth")


def parse_events(body: bytes, *, max_events: int) -> list[Event]:
    """Decode one event or `{"events": [...]}`; raise InvalidInput naming the field at fault."""
    # Fast path: straight into the typed structs in one pass. Anything it does not take
    # (a body shaped otherwise, an invalid field) goes the general way below, which
    # names the field at fault.
    try:
        if b'"events"' in body:
            events = _batch_decoder.decode(body).events
            if 0 < len(events) <= max_events:
                return _checked(events, "events[{}].")
        else:
            return _checked([_event_decoder.decode(body)], "")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass  # including ValidationError: reported below, with the field named
    try:
        raw: Any = _decoder.decode(body)
    # msgspec raises UnicodeDecodeError for bad UTF-8 inside a string, and RecursionError
    # for very deep nesting: both are the client's malformed body, not a server error.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("body", f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("body", 'expected a JSON object: one event or {"events": [...]}')
    return parse_event_dict(raw, max_events=max_events)


def parse_event_dict(raw: dict[str, Any], *, max_events: int = 1) -> list[Event]:
    """Validate one decoded event, or a decoded `{"events": [...]}`."""
    if "events" in raw:
        items = raw["events"]
        if isinstance(items, list) and len(items) > max_events:
            raise TooLarge(
                "events", f"at most {max_events} events in one request, got {len(items)}"
            )
        if isinstance(items, list) and not items:
            raise InvalidInput("events", "expected at least one event")
        try:
            events = msgspec.convert(raw, EventBatch, strict=False).events
        except msgspec.ValidationError as exc:
            raise InvalidInput(*field_of_error(exc)) from None
        prefix = "events[{}]."
    else:
        try:
            events = [msgspec.convert(raw, Event, strict=False)]
        except msgspec.ValidationError as exc:
            raise InvalidInput(*field_of_error(exc)) from None
        prefix = ""
    return _checked(events, prefix)


# A list as pages send it (ids and commas, nothing else) is checked in one match.
_PLAIN_ID_LIST: Final = re.compile(rf"{ARTICLE_ID_RE.pattern}(?:,{ARTICLE_ID_RE.pattern})*")


def parse_article_ids(raw: str | None, *, max_ids: int) -> list[str]:
    """The `ids` query of the batch stats read: a comma list of article ids, in order."""
    if raw is not None and _PLAIN_ID_LIST.fullmatch(raw):
        ids = raw.split(",")
        if len(ids) > max_ids:
            raise InvalidInput("ids", f"at most {max_ids} ids, got {len(ids)}")
        return ids
    if raw is None or not raw.strip():
        raise InvalidInput("ids", "expected a comma-separated list of article ids")
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:  # only commas
        raise InvalidInput("ids", "expected a comma-separated list of article ids")
    if len(ids) > max_ids:
        raise InvalidInput("ids", f"at most {max_ids} ids, got {len(ids)}")
    for article_id in ids:
        validate_article_id(article_id, field="ids")
    return ids


def validate_article_id(article_id: str, *, field: str = "article_id") -> str:
    if not ARTICLE_ID_RE.fullmatch(article_id):
        raise InvalidInput(field, ARTICLE_ID_RULE)
    return article_id


def event_schema() -> dict[str, Any]:
    """JSON Schema of one event, for the OpenAPI document."""
    _, components = msgspec.json.schema_components([Event], ref_template="{name}")
    event = dict(components["Event"])
    # `channel` is required for shares, and an engage event carries seconds or a depth;
    # JSON Schema says so with if/then.
    event["allOf"] = [
        {
            "if": {"properties": {"type": {"const": "share"}}},
            "then": {"required": ["channel"], "properties": {"channel": {"type": "string"}}},
        },
        {
            "if": {"properties": {"type": {"const": "engage"}}},
            "then": {
                "anyOf": [
                    {"required": ["engaged_s"], "properties": {"engaged_s": {"minimum": 1}}},
                    {"required": ["depth"], "properties": {"depth": {"minimum": QUARTERS[0]}}},
                ]
            },
        },
    ]
    return event
