"""Redis key and hash-field names.

Every key of a shard carries the hash tag `{s<N>}`, so that one script call, which only
touches the keys of one shard, runs unchanged on Redis Cluster.

Per shard:
  live     hash: the counters being written now (the next batch, id `<epoch>:<gen+1>`)
  batch    hash: the counters being flushed (at most one per shard), its id in field `_id`
  gen      integer: how many batches this shard has cut
  epoch    random token, set once: batch ids stay unique even if Redis loses its data

  d:<digest>        a reader's recent event (SET NX EX dedup window): repeats are not counted
  u:<day>:<article> HyperLogLog of the day's readers of an article

Fields of a live/batch hash:
  `b <hour> <metric> <article>`  count per hour bucket (what the flusher writes to Postgres)
  `t <metric> <article>`         running count per article (what reads add to Postgres')
  `u <day> <article>`            the day's reader sketch of the article changed
  `m <article>`                  latest metadata (JSON) the events carried
  `_first_ms`, `_events`, `_counters`, `_id`: bookkeeping (age, size, batch id)

Metrics: `view`, `share:<channel>`, `referral:<channel>` (a view that came from a share
channel) and `preview:<channel>` (a link-preview fetcher of that channel).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Final

from .models import CHANNELS

BUCKET: Final = "b"
TOTAL: Final = "t"
META: Final = "m"
UNIQUES: Final = "u"
FIRST_MS: Final = "_first_ms"
EVENTS: Final = "_events"
COUNTERS: Final = "_counters"
BATCH_ID: Final = "_id"
PARTS: Final = "_parts"

VIEW_METRIC: Final = "view"
SHARE: Final = "share"
REFERRAL: Final = "referral"
PREVIEW: Final = "preview"
CHANNEL_KINDS: Final = (SHARE, REFERRAL, PREVIEW)
ALL_METRICS: Final = (
    VIEW_METRIC,
    *(f"{kind}:{channel}" for kind in CHANNEL_KINDS for channel in CHANNELS),
)


def shard_of(article_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    if shards == 1:
        return 0
    return zlib.crc32(article_id.encode()) % shards


def part_of(article_id: str, parts: int) -> int:
    """Which part of a batch holds an article's counters (parts are applied in parallel).
    adler32, not crc32: independent of the shard, which crc32 picks."""
    if parts == 1:
        return 0
    return zlib.adler32(article_id.encode()) % parts


def bucket_field(hour: int, metric: str, article_id: str) -> str:
    return f"{BUCKET} {hour} {metric} {article_id}"


def total_field(metric: str, article_id: str) -> str:
    return f"{TOTAL} {metric} {article_id}"


def meta_field(article_id: str) -> str:
    return f"{META} {article_id}"


def uniques_field(day: int, article_id: str) -> str:
    return f"{UNIQUES} {day} {article_id}"


def total_fields(article_id: str) -> list[str]:
    """The fields a read asks for, in ALL_METRICS order."""
    return [total_field(metric, article_id) for metric in ALL_METRICS]


@dataclass(frozen=True, slots=True)
class ShardKeys:
    shard: int
    live: str
    batch: str
    gen: str
    epoch: str

    base: str

    def batch_id(self, redis_id: str) -> str:
        """The id recorded in Postgres: shard number plus the Redis-side `<epoch>:<gen>`."""
        return f"{self.shard}:{redis_id}"

    def dedup(self, reader: bytes, metric: str, article_id: str) -> str:
        digest = hashlib.blake2b(digest_size=12)
        for part in (reader, metric.encode(), article_id.encode()):
            digest.update(part)
            digest.update(b"\x00")
        return f"{self.base}:d:{digest.hexdigest()}"

    def uniques(self, day: int, article_id: str) -> str:
        return f"{self.base}:u:{day}:{article_id}"

    def scratch(self, token: str) -> str:
        """A temporary key in this shard's slot (for merging sketches)."""
        return f"{self.base}:tmp:{token}"


class Keys:
    def __init__(self, prefix: str, shards: int) -> None:
        self.prefix = prefix
        self.shards = shards
        self.lease = f"{prefix}:flush-lease"
        self._shards = [self._make(n) for n in range(shards)]

    def _make(self, shard: int) -> ShardKeys:
        base = f"{self.prefix}:{{s{shard}}}"
        return ShardKeys(
            base=base,
            shard=shard,
            live=f"{base}:live",
            batch=f"{base}:batch",
            gen=f"{base}:gen",
            epoch=f"{base}:epoch",
        )

    def shard(self, shard: int) -> ShardKeys:
        return self._shards[shard]

    def for_article(self, article_id: str) -> ShardKeys:
        return self._shards[shard_of(article_id, self.shards)]

    def all_shards(self) -> list[ShardKeys]:
        return list(self._shards)
