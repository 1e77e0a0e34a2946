"""Plain values that carry counts between the Redis side and the PostgreSQL side.

The Redis side (batches.py, pending.py) produces them, the PostgreSQL side (store.py)
consumes them, and neither knows the other's keys, clients or pools.

Metrics, as stored in both: `view`, `share:<channel>`, `referral:<channel>` (a view that
came from a share channel), `preview:<channel>` (a link-preview fetcher of that
channel), and from engage events `engaged_s` (engaged seconds), `engaged` (engaged
readers) and `read:<quarter>` (readers who reached 25, 50, 75 or 100 % of the body).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Final

from tracker.core.metadata import ArticleMeta, Source
from tracker.events.models import CHANNELS, QUARTERS

VIEW: Final = "view"
SHARE: Final = "share"
REFERRAL: Final = "referral"
PREVIEW: Final = "preview"
CHANNEL_KINDS: Final = (SHARE, REFERRAL, PREVIEW)
ENGAGED_S: Final = "engaged_s"
ENGAGED: Final = "engaged"
READ: Final = "read"
READ_THROUGH: Final = f"{READ}:100"
ENGAGE_METRICS: Final = (ENGAGED_S, ENGAGED, *(f"{READ}:{q}" for q in QUARTERS))
ALL_METRICS: Final = (
    VIEW,
    *(f"{kind}:{channel}" for kind in CHANNEL_KINDS for channel in CHANNELS),
    *ENGAGE_METRICS,
)


def engagement(metrics: dict[str, int]) -> tuple[int, float, float]:
    """(engaged readers, engaged seconds per engaged reader, share who read through)."""
    readers = metrics.get(ENGAGED, 0)
    if not readers:
        return 0, 0.0, 0.0
    average = round(metrics.get(ENGAGED_S, 0) / readers, 1)
    return readers, average, round(min(1.0, metrics.get(READ_THROUGH, 0) / readers), 3)


# (article_id, metric, hour since the epoch)
CounterKey = tuple[str, str, int]
# (UTC day, article_id)
DayArticle = tuple[int, str]


def part_of(article_id: str, parts: int) -> int:
    """Which part of a batch holds an article's counters (parts are applied in parallel).
    adler32, not crc32: independent of the shard, which crc32 picks."""
    if parts == 1:
        return 0
    return zlib.adler32(article_id.encode()) % parts


@dataclass(frozen=True, slots=True)
class Sketch:
    """A day's reader sketch of an article (a Redis HyperLogLog, as Redis stores it)."""

    data: bytes
    readers: int


@dataclass(slots=True)
class Batch:
    """Counters cut from one shard, to be applied to PostgreSQL exactly once.

    `id` is what PostgreSQL records (`<shard>:<epoch>:<generation>`); generations of a
    shard's epoch only grow. The batch is applied in `parts` transactions, articles split
    by part_of.
    """

    id: str
    shard: int
    epoch: str
    generation: int
    parts: int = 1
    resumed: bool = False
    events: int = 0
    counters: dict[CounterKey, int] = field(default_factory=dict)
    # article_id -> the latest metadata its counted events carried (url, title, ...),
    # and as what it is to be taken: a claim, or trusted events' word
    metadata: dict[str, ArticleMeta] = field(default_factory=dict)
    metadata_source: Source = Source.CLAIM
    # article_id -> its page on a site origin, as its events named it
    page_urls: dict[str, str] = field(default_factory=dict)
    # every (day, article) whose reader sketch the batch changed (stored apart)
    sketches_changed: set[DayArticle] = field(default_factory=set)

    def split(self) -> list[Batch]:
        """One Batch per part, each with the articles part_of assigns it; the batch's
        event count goes with part 0, so the parts' counts add up to it."""
        if self.parts == 1:
            return [self]
        pieces = [
            Batch(
                self.id,
                self.shard,
                self.epoch,
                self.generation,
                self.parts,
                self.resumed,
                self.events if n == 0 else 0,
                metadata_source=self.metadata_source,
            )
            for n in range(self.parts)
        ]
        for key, count in self.counters.items():
            pieces[part_of(key[0], self.parts)].counters[key] = count
        for article_id, metadata in self.metadata.items():
            pieces[part_of(article_id, self.parts)].metadata[article_id] = metadata
        for article_id, url in self.page_urls.items():
            pieces[part_of(article_id, self.parts)].page_urls[article_id] = url
        return pieces


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a batch did: parts added now, and parts PostgreSQL had already."""

    parts_now: int
    parts_before: int


@dataclass(frozen=True, slots=True)
class PendingCounts:
    """Counts still in Redis for some articles, and the batch id they will be applied as."""

    batch_id: str
    # article_id -> metric -> count
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Pending:
    pieces: list[PendingCounts]
    # article_id -> day -> readers counted in the day's sketch still in Redis
    readers: dict[str, dict[int, int]]


# A piece's count of a metric in an hour; hour TOTAL_HOUR: the piece's total, when every
# hour it holds lies in the range asked.
TOTAL_HOUR: Final = -1


@dataclass(frozen=True, slots=True)
class PendingPiece:
    """What one pending piece holds of some articles in a range of hours, with the batch
    id it will be applied as."""

    batch_id: str
    # article_id -> (hour, metric) -> count
    counts: dict[str, dict[tuple[int, str], int]]


@dataclass(frozen=True, slots=True)
class PendingSlice:
    """What Redis holds and PostgreSQL may not, for reports: for the articles asked about
    and those with the most pending activity, their counters per piece; `bound`, the most
    any other article has pending of any metric (0: none has any)."""

    pieces: list[PendingPiece]
    # (article_id, activity), most first
    candidates: list[tuple[str, int]]
    bound: int
    # article_id -> day -> readers in the day's sketch in Redis (the recent days)
    readers: dict[str, dict[int, int]]
    # article_id -> the metadata its newest pending events carried (what reports show
    # of an article PostgreSQL has no metadata of yet)
    metadata: dict[str, dict[str, str]]

    def articles(self) -> set[str]:
        return {article_id for piece in self.pieces for article_id in piece.counts} | {
            article_id for article_id, _ in self.candidates
        }


@dataclass(frozen=True, slots=True)
class AppliedParts:
    """Which parts of a batch PostgreSQL holds already."""

    parts: int
    done: frozenset[int]

    def holds(self, article_id: str) -> bool:
        return part_of(article_id, self.parts) in self.done


@dataclass(frozen=True, slots=True)
class Stored:
    """What PostgreSQL holds for some articles, read in one snapshot."""

    # article_id -> metric -> count
    totals: dict[str, dict[str, int]]
    # batch id -> its parts applied, for the pending pieces asked about
    applied: dict[str, AppliedParts]
    # article_id -> day -> readers stored, for the recent days asked
    readers: dict[str, dict[int, int]]
    # article_id -> readers summed over every stored day
    readers_total: dict[str, int]
    # article_id -> metric -> what of its total came from a previous counter
    imported: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class PendingStats:
    """How much waits in Redis, over all shards, and since when."""

    events: int
    counters: int
    oldest_event_ms: int | None
