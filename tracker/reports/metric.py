"""The metrics a report ranks by, as asked (`views`, `shares:telegram`, `read_through`,
...) and the stored metrics each one reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tracker.core.errors import InvalidInput
from tracker.events.counts import ENGAGED, ENGAGED_S, READ_THROUGH, REFERRAL, SHARE, VIEW
from tracker.events.models import CHANNELS

UNIQUES: Final = "uniques"
METRIC_NAMES: Final = ("views", UNIQUES, "shares", "referrals", "engaged", "read_through")


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # as asked: views, uniques, shares, shares:telegram, referrals, ...
    metrics: tuple[str, ...]  # the stored metrics it sums (none for uniques)
    # The first of `metrics` over the second (read-through: read to the end ÷ engaged
    # readers), instead of their sum.
    ratio: bool = False


def metric_of(text: str | None) -> Metric:
    text = "views" if text is None else text
    kind, _, channel = text.partition(":")
    if kind in ("shares", "referrals") and (not channel or channel in CHANNELS):
        prefix = SHARE if kind == "shares" else REFERRAL
        channels = (channel,) if channel else CHANNELS
        return Metric(text, tuple(f"{prefix}:{c}" for c in channels))
    if text == "views":
        return Metric(text, (VIEW,))
    if text == "engaged":  # engaged seconds
        return Metric(text, (ENGAGED_S,))
    if text == "read_through":
        return Metric(text, (READ_THROUGH, ENGAGED), ratio=True)
    if text == UNIQUES:
        return Metric(text, ())
    raise InvalidInput(
        "metric",
        f"one of {', '.join(METRIC_NAMES)}, shares:CHANNEL or referrals:CHANNEL "
        f"(channels: {', '.join(CHANNELS)})",
    )
