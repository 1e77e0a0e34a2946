"""Article metadata: what an article is besides its counts (title, url, category, lang,
author, group, published), defined once here.

Events, the editors' PUT and import, the page reader, the Plausible mapping, the SQL
column lists and tracker.js's list all follow ArticleMeta's fields. Each value has a
source; what editors and readers see is, field by field, the most authoritative source's:

  editor  `tracker import`, `PUT /api/v1/articles/{id}`, `tracker article set`
  page    the article's own page, fetched by tracker from a site origin, only when the
          page declares the same article id
  event   events' metadata, only with TRACKER_TRUST_EVENT_METADATA=1 (server-side senders
          on a private network)
  claim   otherwise an event's metadata is at most a first claim: kept only while no
          other source has spoken, shown to editors as unverified, never to readers
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

ARTICLE_ID_PATTERN: Final = r"^[A-Za-z0-9_.:/-]{1,128}$"
# fullmatch, because `$` in the schema pattern also matches before a final newline.
ARTICLE_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
ARTICLE_ID_RULE: Final = "expected 1 to 128 characters of A-Za-z0-9_.:/-"
ArticleId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=ARTICLE_ID_PATTERN)]

# No U+0000: PostgreSQL text cannot hold it, and one in metadata made its batch unflushable.
NO_NUL: Final = r"^[^\x00]*$"
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=NO_NUL)]
Title = Annotated[str, msgspec.Meta(max_length=512, pattern=NO_NUL)]
Label = Annotated[str, msgspec.Meta(max_length=128, pattern=NO_NUL)]
Lang = Annotated[str, msgspec.Meta(max_length=35, pattern=NO_NUL)]
Author = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)]


class Source(IntEnum):
    """Where a value came from; a lower number outranks a higher one."""

    EDITOR = 1
    PAGE = 2
    EVENT = 3
    CLAIM = 4


# When an article was published, as events carry it: RFC 3339 (a date alone is its
# midnight, UTC). A claim of a day that does not exist is dropped, not the event.
PUBLISHED_PATTERN: Final = (
    r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})?)?$"
)
PublishedText = Annotated[str, msgspec.Meta(max_length=40, pattern=PUBLISHED_PATTERN)]


class MetaText(msgspec.Struct, frozen=True, omit_defaults=True):
    """The metadata fields but the publication time, all optional."""

    title: Title | None = None
    url: Url | None = None
    category: Label | None = None
    lang: Lang | None = None
    author: Author | None = None
    # One story published in several languages or under several slugs.
    group: ArticleId | None = None


class MetaFields(MetaText, frozen=True, omit_defaults=True):
    """The metadata fields, as a source gives them (the publication time in text, as
    events carry it: models.Event)."""

    published: PublishedText | None = None


class PageOutcome(StrEnum):
    """How reading an article's page went (article_pages.py)."""

    VERIFIED = "verified"
    MISMATCH = "mismatch"  # the page does not say it is this article
    HTTP_ERROR = "http_error"
    NOT_HTML = "not_html"
    TOO_LARGE = "too_large"
    OFF_SITE = "off_site"  # redirected off the site's origins
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    DROPPED = "dropped"  # not fetched: the queue was full


class ArticleMeta(MetaText, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """An article's metadata from one source, checked (an editor's PUT refuses unknown
    fields)."""

    published: datetime | None = None


FIELDS: Final[tuple[str, ...]] = ArticleMeta.__struct_fields__
# PostgreSQL's column of each field, in FIELDS order (`group` is a reserved word there).
COLUMNS: Final[tuple[str, ...]] = tuple("group_id" if f == "group" else f for f in FIELDS)
# The fields a page's script tag or <meta name="tracker:..."> tags give tracker.js (the
# page's URL is its own address).
PAGE_FIELDS: Final[tuple[str, ...]] = tuple(f for f in FIELDS if f != "url")
TEXT_FIELDS: Final[tuple[str, ...]] = tuple(f for f in FIELDS if f != "published")


def _max_lengths() -> dict[str, int]:
    found = {}
    for info in msgspec.inspect.type_info(MetaFields).fields:  # type: ignore[attr-defined]
        for option in getattr(info.type, "types", (info.type,)):
            if isinstance(option, msgspec.inspect.StrType) and option.max_length is not None:
                found[info.name] = option.max_length
    return found


# The longest text each field takes, as its type says.
MAX_LENGTH: Final[dict[str, int]] = _max_lengths()


def stored_url(url: str) -> str:
    """What is kept of a page URL: its origin and path, and its utm_* parameters (which
    tell where readers came from); other parameters may hold a reader's tokens. Empty
    for anything but an absolute http(s) URL (a `javascript:` URL or a formula would be
    a link a report page follows, or a cell a spreadsheet runs)."""
    try:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return ""
        campaign = [
            (name, value) for name, value in parse_qsl(parts.query) if name.startswith("utm_")
        ]
        host = parts.hostname
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, urlencode(campaign), ""))


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute http(s) URL, lower-cased, without a default
    port: two spellings of one origin compare equal. Empty if it is none."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return ""
    if scheme not in _DEFAULT_PORTS or not host:
        return ""
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def published_at(value: str | datetime | None) -> datetime | None:
    """A publication time in UTC (one without a zone is UTC); None if it is no time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


def cleaned(meta: MetaFields | ArticleMeta) -> ArticleMeta:
    """Blank text dropped, text trimmed, the URL reduced to what is kept (dropped when it
    is not an http(s) URL), the publication time in UTC."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = getattr(meta, name)
        if isinstance(value, str) and value.strip():
            values[name] = value.strip()
    if "url" in values:
        values["url"] = stored_url(values["url"]) or None
    values["published"] = published_at(meta.published)
    return ArticleMeta(**{k: v for k, v in values.items() if v is not None})


def as_dict(meta: MetaFields | ArticleMeta) -> dict[str, str]:
    """The set fields as text (the publication time in ISO 8601), e.g. for Redis."""
    found = {}
    for name in FIELDS:
        value = getattr(meta, name)
        if value is None:
            continue
        found[name] = value.isoformat() if isinstance(value, datetime) else value
    return found


def from_dict(values: dict[str, Any]) -> ArticleMeta:
    """Metadata from text values (as_dict's, or a file's): raises msgspec.ValidationError
    naming the field."""
    return msgspec.convert(values, ArticleMeta, strict=False)


def column_values(metas: list[ArticleMeta]) -> list[list[Any]]:
    """Per column (FIELDS order), the values of each metadata: array parameters for SQL."""
    return [[getattr(meta, name) for meta in metas] for name in FIELDS]
