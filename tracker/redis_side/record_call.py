"""The record script's arguments, declared once here: record.lua reads the head by these
field names and each record's values at the offsets of the names `layout` sends with
every call, so Python and Lua never agree by position (before: ten positional values
per event, read back by hard-coded offsets). The head is one MessagePack map; the
records follow as arguments (readers and event ids are bytes, which Redis' MessagePack
cannot carry), each its values in field order and its list, last, as a count followed
by its items."""

from __future__ import annotations

from typing import Final, NamedTuple

import msgspec


class UnitRecord(NamedTuple):
    """What one unit of an event adds: a view, engaged seconds, a reader, a share..."""

    dedup: str  # the metric it is de-duplicated as ('' none)
    kind: str  # 'v' a view; 's' engaged seconds, 'r' an engaged reader or quarter; 'p' other
    amount: int
    part: str  # its part of the event id (a retried event counts no unit twice)
    fields: list[str]  # the live hash's fields it adds `amount` to


class EventRecord(NamedTuple):
    state_key: int  # KEYS index of the address's readers on the article
    sketch_key: int  # KEYS index of the day's readers sketch (0: not a reader's view)
    trend: str  # trending kind: 'v', 's' or '-'
    article_id: str
    reader: bytes
    metadata: int  # index into `metas` (1-based; 0: none)
    event_id: bytes | str  # compact id ('' none)
    units: list[UnitRecord]


class RequestRecord(NamedTuple):
    rate_key: int  # KEYS index of the address's rate key (0: no limit)
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
    first_claim: bool  # events' metadata a first claim (a field keeps its first value)


# The order of each record's array, sent with every call (names once, not per record).
LAYOUT: Final = {
    "request": RequestRecord._fields,
    "event": EventRecord._fields,
    "unit": UnitRecord._fields,
}


# Each record's list comes last: its items follow the record's own values.
assert [names[-1] for names in LAYOUT.values()] == ["events", "units", "fields"]


class CallHead(msgspec.Struct, frozen=True):
    """ARGV[1]."""

    head: RecordHead
    layout: dict[str, tuple[str, ...]]  # LAYOUT
    metas: list[str]  # metadata texts (JSON objects), named by index by events


_encoder: Final = msgspec.msgpack.Encoder()


def arguments(
    head: RecordHead, metas: list[str], requests: list[RequestRecord]
) -> list[str | int | bytes]:
    """ARGV: the head, then the number of requests and the records, flat."""
    args: list[str | int | bytes] = [_encoder.encode(CallHead(head, LAYOUT, metas))]
    args.append(len(requests))
    for request in requests:
        args += request[:-1]
        args.append(len(request.events))
        for event in request.events:
            args += event[:-1]
            args.append(len(event.units))
            for unit in event.units:
                args += unit[:-1]
                args.append(len(unit.fields))
                args += unit.fields
    return args
