"""Plausible's Events API: what Plausible's script, its npm package and server-side
clients POST to /api/event, translated into tracker's own event.

A `pageview` is a view; a custom event named in TRACKER_PLAUSIBLE_SHARE_EVENTS with a
`channel` prop is a share; anything else (engagement, other custom events, a page whose
URL holds no article id) is acknowledged and not counted. The translated event is
validated by models.py like any other, so both endpoints count by the same rules.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, UnsetType

from tracker.core.env_values import MAX_EVENT_NAME_LENGTH
from tracker.core.errors import InvalidInput, OriginNotAllowed
from tracker.core.metadata import PAGE_FIELDS
from tracker.core.settings import Settings
from tracker.events.models import (
    ARTICLE_ID_RE,
    ARTICLE_ID_RULE,
    NO_NUL,
    Event,
    Url,
    parse_event_dict,
)

PAGEVIEW: Final = "pageview"
# Plausible's own bounds: 30 custom properties an event, a domain list of a few names.
MAX_PROPS: Final = 30
MAX_PROPS_JSON: Final = 64 * 1024
MAX_DOMAINS_LENGTH: Final = 1024
# Props that become the article's metadata, under the same names as in tracker's events
# (metadata.py; the page's URL is the event's own).
METADATA_PROPS: Final = PAGE_FIELDS
# The share's channel; `method` is what some sites already send with their Share goal.
CHANNEL_PROPS: Final = ("channel", "method")
# Short names (Plausible's script) to the Events API's long ones, for error messages;
# `m`/`meta` are older scripts' names of the props.
LONG_NAMES: Final = {
    "n": "name",
    "u": "url",
    "d": "domain",
    "r": "referrer",
    "p": "props",
    "m": "props",
    "meta": "props",
}

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_EVENT_NAME_LENGTH, pattern=NO_NUL)]
# At least one name in the comma list: a blank domain is refused as Plausible does.
# Blank is ASCII's space and control characters, spelled out: `\s` means other
# characters in Python's regular expressions than in the schema's (ECMA-262).
ASCII_BLANK: Final = "".join(map(chr, range(0x21)))
Domains = Annotated[str, msgspec.Meta(max_length=MAX_DOMAINS_LENGTH, pattern=r"[^\x00-\x20,]")]
# The page's absolute http(s) URL with a host (what the domain check needs), in the same
# regular expression for msgspec (Python's re) and the schema (ECMA-262): the decoder
# refuses what the schema does, so the two cannot disagree. The user part is RFC 3986's
# characters: a bracket or a character NFKC folds into a delimiter makes urlsplit fail.
PAGE_URL_PATTERN: Final = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~%!$&'()*+,;=:-]*@)?[A-Za-z0-9._~%!$&'()*+,;=-]+(:[0-9]*)?"
    r"([/?#][^\x00]*)?$"
)
PageUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, pattern=PAGE_URL_PATTERN)]
Props = (
    Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_PROPS)]
    # Older scripts send props (and `m`, meta) as a JSON-encoded string of the object.
    | Annotated[str, msgspec.Meta(max_length=MAX_PROPS_JSON)]
    | None
)


class Payload(msgspec.Struct, frozen=True):
    """Plausible's event: short names from its script, long ones from server-side
    clients. Other fields (`v`, `w`, `h`, `i`, `$`, `sd`, `e`, ...) are ignored."""

    # UNSET, not None: a null name, URL or domain is refused, not taken for a missing one.
    n: Name | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    u: PageUrl | UnsetType = UNSET
    url: PageUrl | UnsetType = UNSET
    d: Domains | UnsetType = UNSET
    domain: Domains | UnsetType = UNSET
    r: Url | None = None
    referrer: Url | None = None
    p: Props = None
    props: Props = None
    m: Props = None
    meta: Props = None


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings that decide what a Plausible event becomes, prepared once."""

    share_events: frozenset[str]  # lower-cased
    article_id_re: re.Pattern[str]
    allowed_sites: frozenset[str] | None  # None: any (`*` in TRACKER_ALLOWED_ORIGINS)


def rules_of(settings: Settings) -> Rules:
    return _rules(
        settings.plausible_share_events, settings.article_id_from_url, settings.allowed_origins
    )


@functools.lru_cache(maxsize=8)
def _rules(
    share_events: tuple[str, ...], article_id_from_url: str, origins: tuple[str, ...]
) -> Rules:
    sites = None if "*" in origins else frozenset(_site(_host_of(o)) for o in origins)
    return Rules(
        frozenset(name.lower() for name in share_events), re.compile(article_id_from_url), sites
    )


_decoder: Final = msgspec.json.Decoder(Payload)
_props_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_PATH_RE: Final = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
# Where a path's first field ends: `p[...]`, `p.title`.
_FIELD_END: Final = re.compile(r"[.\[]")


def parse_plausible(body: bytes, rules: Rules) -> Event | None:
    """The event to count, or None for one tracker does not count. InvalidInput names
    the field at fault; OriginNotAllowed a domain that is not one of the allowed sites,
    or a page whose host is not one of the event's domains."""
    payload = _decode(body)
    name = _first(payload.n, payload.name, "name")
    url = _first(payload.u, payload.url, "url")
    _check_domains(payload.domain if payload.d is UNSET else payload.d, url, rules)
    path = _page_path(url)
    kind = _kind(name, rules)
    return None if kind is None else _translated(payload, kind, url, path, rules)


def _translated(payload: Payload, kind: str, url: str, path: str, rules: Rules) -> Event | None:
    """tracker's event of a view or a share, validated as any event is, errors naming
    Plausible's fields; None for a page whose URL holds no article id."""
    props = _props(payload)
    fields = {"url": "url", "referrer": "referrer"}
    if "article_id" in props:
        article_id: str | None = _text(props["article_id"], "props.article_id")
        fields["article_id"] = "props.article_id"
    else:
        article_id = _article_id_from(path, rules.article_id_re)
        fields["article_id"] = "url"
    if article_id is None:
        return None  # not an article's page (a home or section page, say)
    event: dict[str, Any] = {"type": kind, "article_id": article_id, "url": url}
    referrer = payload.r if payload.r is not None else payload.referrer
    if referrer:
        event["referrer"] = referrer
    for prop in METADATA_PROPS:
        if prop in props:
            event[prop] = props[prop]
            fields[prop] = f"props.{prop}"
    if kind == "share":
        fields["channel"] = "props.channel"
        for prop in CHANNEL_PROPS:
            if prop in props:
                event["channel"] = _text(props[prop], f"props.{prop}").strip().lower()
                fields["channel"] = f"props.{prop}"
                break
    try:
        (parsed,) = parse_event_dict(event)
    except InvalidInput as exc:
        raise InvalidInput(fields.get(exc.field, exc.field), exc.message) from None
    return parsed


def _decode(body: bytes) -> Payload:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(*_field_of(exc)) from None
    # Bad UTF-8 in a string and very deep nesting: the client's malformed body too.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("body", f"malformed JSON: {exc}") from None


def _field_of(error: msgspec.ValidationError) -> tuple[str, str]:
    """ "Expected `str` - at `$.u`" -> ("url", "Expected `str`"): the Events API's names."""
    text = str(error)
    match = _PATH_RE.search(text)
    if match is None or not match.group("path"):
        return "body", text
    path = match.group("path")
    head = _FIELD_END.split(path, maxsplit=1)[0]
    return LONG_NAMES.get(head, head) + path[len(head) :], text[: match.start()]


def _first(short: str | UnsetType, long: str | UnsetType, field: str) -> str:
    value = long if short is UNSET else short
    if value is UNSET:
        raise InvalidInput(field, f"required (`{field[0]}` or `{field}`)")
    return value


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _site(host: str) -> str:
    """A domain as Plausible compares them: any case, without a leading `www.`."""
    return host.strip(ASCII_BLANK).lower().rstrip(".").removeprefix("www.")


def _check_domains(domains: str | UnsetType, url: str, rules: Rules) -> None:
    """Each domain the event is for must be an allowed site (configuration alone says
    which: no header a client sends), and the page must be on one of them."""
    host = _host_of(url)
    if not host:
        raise InvalidInput("url", "expected an absolute http(s) URL")
    page = _site(host)
    if domains is UNSET:  # as Plausible does: the page's own host
        sites = [page]
    else:
        sites = [_site(part) for part in domains.split(",") if part.strip(ASCII_BLANK)]
    if rules.allowed_sites is not None:
        for site in sites:
            if site not in rules.allowed_sites:
                raise OriginNotAllowed("domain", f"{site} is not an allowed site")
    if page not in sites:
        raise OriginNotAllowed("url", f"the page is on {page}, not on the event's domain")


def _page_path(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput("url", "expected an absolute http(s) URL")
    return parts.path


def _kind(name: str, rules: Rules) -> str | None:
    if name == PAGEVIEW:
        return "view"
    if name.strip().lower() in rules.share_events:
        return "share"
    return None


def _props(payload: Payload) -> dict[str, Any]:
    """The props, whichever way they came; empty values dropped, as Plausible drops them."""
    # Plausible's order: meta (older scripts) first, then props.
    raw = next(
        (r for r in (payload.m, payload.meta, payload.p, payload.props) if r is not None), None
    )
    if isinstance(raw, str):
        try:
            raw = _props_decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise InvalidInput("props", "expected an object, or a JSON string of one") from None
        if len(raw) > MAX_PROPS:
            raise InvalidInput("props", f"at most {MAX_PROPS} properties")
    return {key: value for key, value in (raw or {}).items() if value not in (None, "")}


def _text(value: Any, field: str) -> str:
    # Numbers are welcome as ids (a CMS's numeric ids); anything else but text is not.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidInput(field, "expected a string")
    return value


def _article_id_from(path: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(path)
    article_id = match.group(1) if match is not None else None
    if not article_id:
        return None
    if not ARTICLE_ID_RE.fullmatch(article_id):
        raise InvalidInput(
            "url",
            f"the article id in its path (TRACKER_ARTICLE_ID_FROM_URL) is not valid: "
            f"{ARTICLE_ID_RULE}",
        )
    return article_id


def plausible_schema() -> dict[str, Any]:
    """JSON Schema of Plausible's event as accepted here, for the OpenAPI document."""
    _, components = msgspec.json.schema_components([Payload], ref_template="{name}")
    schema = dict(components["Payload"])
    schema["title"] = "PlausibleEvent"
    schema["description"] = (
        "Plausible's event: its script's short names or the Events API's long ones "
        "(`n`/`name`, `u`/`url`, `d`/`domain`, `r`/`referrer`, `p`/`props`; `m`/`meta`: "
        "older scripts' props). Other fields are ignored."
    )
    # One of each pair is required; the domain, as in Plausible's docs (without one,
    # the URL's host is checked, as Plausible does).
    schema["allOf"] = [
        {"anyOf": [{"required": [short]}, {"required": [long]}]}
        for short, long in (("n", "name"), ("u", "url"), ("d", "domain"))
    ]
    return schema
