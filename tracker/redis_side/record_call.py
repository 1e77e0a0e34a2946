"""The record script's call, declared once here: one MessagePack map (ARGV[1]) that
record.lua reads by these names. The head's values by name; each record (request,
event, unit, field group) an array whose places record.lua takes from the `layout` sent
with the call, so Python and Lua never agree by position.

One argument, not one per value: a round trip of 400 events was 6,400 arguments and 700
keys (about 15 µs of Python per event to build and pack, 2 µs of Redis to parse; issue
20). What many events share is sent once per call and named by index: the kinds of
unit, an article's fields, the metadata texts; an event is five values. The keys an
event names (its readers' state, its sketch, its address's rate) are sent as names the
script puts after the head's prefixes: every one carries the shard's hash tag, so the
call still touches one slot. Readers and event ids are bytes, which Redis' MessagePack
decodes only as strings: they are sent as MessagePack strings of their bytes
(`raw_text`)."""

from __future__ import annotations

from typing import Final, NamedTuple

import msgspec


class UnitRecord(NamedTuple):
    """What a unit of an event is: a view, engaged seconds, a reader, a share... Sent once
    per call however many events of the call are of it."""

    dedup: str  # the metric it is de-duplicated as ('' none)
    kind: str  # 'v' a view; 's' engaged seconds, 'r' an engaged reader or quarter; 'p' other
    amount: int
    part: str  # its part of the event id (a retried event counts no unit twice)
    trend: str  # the trending kind of an event it is the first unit of: 'v', 's' or '-'


class FieldGroup(NamedTuple):
    """What a unit adds to for an article, sent once per call however many events of the
    call add to it: the live hash's fields (its hourly bucket, its total, its sketch's
    marker; what it adds to a total counts towards the article's pending activity) and
    the day's readers sketch it adds its reader to ('' none: not a reader's view)."""

    article_id: str
    sketch: str
    fields: tuple[str, ...]


class EventRecord(NamedTuple):
    state: str  # name of the address's readers on the article ('' none: nothing kept)
    reader: msgspec.Raw  # raw_text of the reader's id
    metadata: int  # index into `metas` (1-based; 0: none)
    event_id: msgspec.Raw | str  # raw_text of the compact id ('' none)
    # Per unit, two indexes (1-based): of its UnitRecord in `units`, of its FieldGroup.
    units: list[int]


class RequestRecord(NamedTuple):
    rate: str  # name of the address's rate key ('' no limit)
    events: list[EventRecord]


class RecordHead(msgspec.Struct, frozen=True):
    """The call's values, read by name."""

    now_ms: int
    window_s: int  # de-duplication window
    readers_per_address: int  # counted per address and article in the window (0: no bound)
    event_cost_ms: int  # what an event costs its address at the rate limit (0: no limit)
    seal_at_fields: int  # the live hash is sealed as a piece at this many fields (0: never)
    state_ttl_s: int  # how long a reader's state on an article is kept
    max_engaged_s: int  # engaged seconds per counted view at most
    trending_keep: int  # articles a trending bucket keeps (half again before it is cut)
    trending_bucket_ms: int
    epoch_candidate: str
    sealed_prefix: str  # keys.py's names: the script spells none
    trending_prefix: str
    state_prefix: str
    hash_state_prefix: str  # where states were hashes before (read until they expire)
    rate_prefix: str
    sketch_prefix: str
    first_claim: bool  # events' metadata a first claim (a field keeps its first value)


# The order of each record's array, sent with every call (names once, not per record).
LAYOUT: Final = {
    "request": RequestRecord._fields,
    "event": EventRecord._fields,
    "unit": UnitRecord._fields,
    "group": FieldGroup._fields,
}


class RecordCall(msgspec.Struct, frozen=True):
    """ARGV[1]."""

    head: RecordHead
    layout: dict[str, tuple[str, ...]]  # LAYOUT
    metas: list[str]  # metadata texts (JSON objects), named by index by events
    units: list[UnitRecord]
    groups: list[FieldGroup]
    requests: list[RequestRecord]


_encoder: Final = msgspec.msgpack.Encoder()


def raw_text(data: bytes) -> msgspec.Raw:
    """`data` as a MessagePack string (str 8: up to 255 bytes), whatever its bytes: what
    Redis' MessagePack decodes to a Lua string of exactly them."""
    return msgspec.Raw(b"\xd9" + bytes((len(data),)) + data)


def arguments(
    head: RecordHead,
    metas: list[str],
    units: list[UnitRecord],
    groups: list[FieldGroup],
    requests: list[RequestRecord],
) -> list[bytes]:
    """ARGV: the call, one MessagePack map."""
    return [_encoder.encode(RecordCall(head, LAYOUT, metas, units, groups, requests))]
