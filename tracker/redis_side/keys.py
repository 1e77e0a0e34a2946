"""Redis key and hash-field names.

Every key of a shard carries the hash tag `{s<N>}`, so that one script call, which only
touches the keys of one shard, runs unchanged on Redis Cluster.

Per shard:
  live     hash: the counters being written now (the next batch, id `<epoch>:<gen+1>`)
  sealed   list of generations: live hashes sealed when they reached their bound, each
           waiting as `sealed:<gen>` (its id in field `_id`) to be applied in order
  batch    hash: the counters being flushed (at most one per shard), its id in field `_id`
  gen      integer: how many pieces this shard has cut
  epoch    random token, set once: batch ids stay unique even if Redis loses its data

  activity          sorted set: per article, what the live hash, sealed pieces and batch
                    hold of it (the sum of its totals' increments): an upper bound of any
                    of its pending counts, for reports that rank without reading them all
  rs:<digest>       an address's readers on an article (one MessagePack map, kept an hour
                    or the dedup window): the readers admitted in the window (the bound
                    per address), and per reader when its view, shares, engaged quarters
                    last counted (repeats within the window are not), the engaged seconds
                    granted since its view, the ids of its counted events (record.lua)
  s:<digest>        the same, as the version before kept it (a hash of text fields):
                    read until it expires, never written (a process of that version, in
                    a rolling upgrade, never meets a state it cannot read)
  r:<address>       the address's rate-limit state (when its bucket is empty again, ms)
  tr:<v|s>:<n>      sorted set: counted views or shares per article in the n-th 5-minute
                    bucket since the epoch, kept two hours (trending compares the last
                    window with the one before), its head only (record.lua)
  u:<day>:<name>    HyperLogLog of the day's readers of an article (sketch_name); no
                    expiry until the flusher has stored it in PostgreSQL
  sketches-due      set of `<day> <article>`: sketches whose readers changed in batches
                    already applied, to be stored (release.lua adds a batch's as it
                    deletes it)
  sketches-taking   the same, taken to be stored now (renamed from sketches-due; a
                    flusher that dies leaves it to be stored again: storing is idempotent)

  lease    the flusher that holds this shard now (one flusher per shard at a time)

Not per shard: `shards` (the shard count the data was written with), `salt:<day>`,
`flush-lease` (the flusher that does the upkeep for all shards: pruning). On a Redis
Cluster a shard's keys share one hash slot; the others are single keys, so no command
spans slots; shards spread over the primaries by their slots.

Fields of a live/batch hash:
  `b <hour> <metric> <article>`  count per hour bucket (what the flusher writes to Postgres)
  `t <metric> <article>`         running count per article (what reads add to Postgres')
  `u <day> <article>`            the day's reader sketch of the article changed (moved
                                 to sketches-due once the batch is applied)
  `m<field> <article>`           a field of the metadata counted events carried (a claim
                                 keeps the piece's first value, trusted events the latest)
  `_first_ms`, `_events`, `_counters`, `_id`: bookkeeping (age, size, batch id)

Metrics are named in counts.py.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tracker.core.utc import DAY_S
from tracker.events.counts import ALL_METRICS

if TYPE_CHECKING:
    from tracker.core.settings import Settings

BUCKET: Final = "b"
TOTAL: Final = "t"
META: Final = "m"
UNIQUES: Final = "u"
EVENTS: Final = "_events"
PARTS: Final = "_parts"
TRENDING_VIEWS: Final = "v"
TRENDING_SHARES: Final = "s"
# Trending counts per bucket of this many seconds (a window is whole buckets).
TRENDING_BUCKET_S: Final = 300

# A day's reader sketch has no expiry while PostgreSQL lacks its latest readers (recording
# a new reader clears it); once stored, it expires at the end of the next day (Redis
# holds two days of stored sketches at most), a past day's PERSISTED_SKETCH_TTL_S after.
SKETCH_DAYS_KEPT: Final = 2
PERSISTED_SKETCH_TTL_S: Final = 3_600


def sketch_expires_at(day: int) -> int:
    return (day + SKETCH_DAYS_KEPT) * DAY_S


def epoch_candidate() -> str:
    """A shard's epoch is set once, from the first candidate offered: batch ids stay unique
    even if Redis loses its data and its generation counter starts again."""
    return secrets.token_hex(6)


def sketch_name(article_id: str) -> str:
    """An article's part of its sketches' keys: short whatever the id (an address naming
    new articles endlessly pays for each key), and made alike by Lua's redis.sha1hex."""
    return hashlib.sha1(article_id.encode()).hexdigest()[:16]  # noqa: S324 - a name, not a secret


def shard_of(article_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    if shards == 1:
        return 0
    return zlib.crc32(article_id.encode()) % shards


def bucket_field(hour: int, metric: str, article_id: str) -> str:
    return f"{BUCKET} {hour} {metric} {article_id}"


def total_field(metric: str, article_id: str) -> str:
    return f"{TOTAL} {metric} {article_id}"


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
    sealed: str
    lease: str
    activity: str
    sketches_due: str
    sketches_taking: str
    # What the scripts put a piece's generation, a trending bucket, a day's sketch, a
    # reader state's name (state_name) or an address's id (hex) after: the names of keys
    # they make are spelled here, never in Lua.
    sealed_prefix: str
    trending_prefix: str
    sketch_prefix: str
    state_prefix: str
    hash_state_prefix: str
    rate_prefix: str

    base: str

    def batch_id(self, redis_id: str) -> str:
        """The id recorded in Postgres: shard number plus the Redis-side `<epoch>:<gen>`."""
        return f"{self.shard}:{redis_id}"

    def redis_id(self, batch_id: str) -> str:
        """The Redis-side `<epoch>:<gen>` of an id made by batch_id."""
        return batch_id.removeprefix(f"{self.shard}:")

    def uniques(self, day: int, article_id: str) -> str:
        return self.sketch_prefix + uniques_name(day, article_id)


def state_name(address: bytes, article_id: str) -> str:
    """A short name for an address's readers on an article (each part followed by NUL,
    so no two splits collide): what follows a shard's state_prefix."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(address)
    digest.update(b"\x00")
    digest.update(article_id.encode())
    digest.update(b"\x00")
    return digest.hexdigest()


@functools.lru_cache(maxsize=8192)
def uniques_name(day: int, article_id: str) -> str:
    """What follows a shard's sketch_prefix in the name of an article's sketch of a day."""
    return f"{day}:{sketch_name(article_id)}"


class Keys:
    @classmethod
    def of(cls, settings: Settings) -> Keys:
        """The keys of the configured prefix and shard count: every process builds them so."""
        return cls(settings.redis_prefix, settings.redis_shards)

    def __init__(self, prefix: str, shards: int) -> None:
        self.prefix = prefix
        self.shards = shards
        self.upkeep_lease = f"{prefix}:flush-lease"
        self.shard_count = f"{prefix}:shards"
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
            sealed=f"{base}:sealed",
            lease=f"{base}:lease",
            activity=f"{base}:activity",
            sketches_due=f"{base}:sketches-due",
            sketches_taking=f"{base}:sketches-taking",
            sealed_prefix=f"{base}:sealed:",
            trending_prefix=f"{base}:tr:",
            sketch_prefix=f"{base}:u:",
            state_prefix=f"{base}:rs:",
            hash_state_prefix=f"{base}:s:",
            rate_prefix=f"{base}:r:",
        )

    def shard(self, shard: int) -> ShardKeys:
        return self._shards[shard]

    def for_article(self, article_id: str) -> ShardKeys:
        return self._shards[shard_of(article_id, self.shards)]

    def all_shards(self) -> list[ShardKeys]:
        return list(self._shards)
