"""What an event adds to: its units (a view, a share, engaged seconds, an engaged reader,
a quarter reached), each the counters it adds to and how the record script is to judge
it; and each kind of unit as the script is told it (record_call.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from tracker.events.bots import HUMAN, PREVIEWER
from tracker.events.counts import ENGAGED, ENGAGED_S, PREVIEW, READ, REFERRAL, SHARE, VIEW
from tracker.events.models import Event
from tracker.events.referrals import referral_channel
from tracker.redis_side import keys as k
from tracker.redis_side.readers import Visitor
from tracker.redis_side.record_call import UnitRecord

# Counted views and shares go into trending buckets (keys.py: tr:<kind>:...).
TRENDING_KINDS: Final = {VIEW: k.TRENDING_VIEWS, SHARE: k.TRENDING_SHARES}
# What kind of unit: the record script lets engaged time and engaged readers count only
# after the reader's counted view of the article.
VIEW_UNIT: Final = "v"
SECONDS_UNIT: Final = "s"
READER_UNIT: Final = "r"
PLAIN_UNIT: Final = "p"


@dataclass(frozen=True, slots=True)
class Unit:
    """What the script adds for one event, or for one part of an engage event: `amount`
    to each of `metrics`, once per reader within the de-duplication window if `dedup`."""

    metrics: tuple[str, ...]
    kind: str = PLAIN_UNIT
    amount: int = 1
    dedup: bool = True
    # Tells this part's event id apart from its event's other parts (a retry of the
    # event is then not counted again, part by part).
    part: str = ""


def event_units(event: Event, visitor: Visitor) -> tuple[Unit, ...]:
    """An engage event adds its seconds (every time: they are increments, but never more
    than the time since the reader's counted view) and, once per reader, an engaged
    reader (on the page view's first) and each quarter first reached; link-preview
    fetchers do not read. Any other event is one unit."""
    if event.type != "engage":
        metrics = event_metrics(event, visitor)
        kind = VIEW_UNIT if metrics[0] == VIEW else PLAIN_UNIT
        return _plain_units(metrics, kind)
    if visitor.agent.kind != HUMAN:
        return ()
    units = []
    if event.engaged_s:
        units.append(Unit((ENGAGED_S,), SECONDS_UNIT, event.engaged_s, dedup=False, part="s"))
    if event.seq == 0:
        units.append(Unit((ENGAGED,), READER_UNIT, part="e"))
    units.extend(Unit((f"{READ}:{q}",), READER_UNIT, part=f"q{q}") for q in event.quarters())
    return tuple(units)


@functools.lru_cache(maxsize=256)
def _plain_units(metrics: tuple[str, ...], kind: str) -> tuple[Unit, ...]:
    # Views, shares and previews: a few dozen kinds, made once each.
    return (Unit(metrics, kind),)


def event_metrics(event: Event, visitor: Visitor) -> tuple[str, ...]:
    """The counters one event adds to, before de-duplication."""
    if visitor.agent.kind == PREVIEWER:
        return (f"{PREVIEW}:{visitor.agent.channel}",)
    if event.type == "view":
        channel = referral_channel(event.referrer, event.url)
        if channel is not None:
            return (VIEW, f"{REFERRAL}:{channel}")
        return (VIEW,)
    return (event.metric,)


@functools.lru_cache(maxsize=256)
def unit_record(unit: Unit) -> UnitRecord:
    """What the record script is told of a kind of unit (views, shares, readers and
    quarters are a few dozen kinds, made once; engaged seconds a kind per amount)."""
    dedup = unit.metrics[0] if unit.dedup else ""
    trend = TRENDING_KINDS.get(unit.metrics[0].partition(":")[0], "-")
    return UnitRecord(dedup, unit.kind, unit.amount, unit.part, trend)
