"""The read side of Redis: what is pending for some articles, each piece with the id of
the batch it will be applied as, and the reader counts of the recent days' sketches."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from . import keys as k
from .counts import ALL_METRICS, Pending, PendingCounts, PendingHours, PendingRange
from .keys import Keys, epoch_candidate
from .redis_client import RedisClient
from .scripts import RANGE, READ, Call, run_calls
from .utc import day_of


def sketch_days(now_s: float) -> tuple[int, int]:
    """The days whose sketches a read asks Redis about: yesterday's may not be stored yet."""
    today = day_of(now_s)
    return today - 1, today


class PendingReader:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(
        self, article_ids: Sequence[str], now_s: float, *, counts: bool = True
    ) -> Pending:
        """Atomically per shard (one script call each, one round trip in all). Without
        `counts`, only the readers of the recent days' sketches."""
        by_shard: dict[int, list[str]] = defaultdict(list)
        for article_id in dict.fromkeys(article_ids):
            by_shard[self.keys.for_article(article_id).shard].append(article_id)
        days = sketch_days(now_s)
        calls = []
        for shard, ids in by_shard.items():
            shard_keys = self.keys.shard(shard)
            fields = (
                [name for article_id in ids for name in k.total_fields(article_id)]
                if counts
                else []
            )
            sketches = [shard_keys.uniques(day, a) for a in ids for day in days]
            calls.append(
                Call(
                    READ,
                    (
                        shard_keys.live,
                        shard_keys.batch,
                        shard_keys.gen,
                        shard_keys.epoch,
                        shard_keys.sealed,
                        *sketches,
                    ),
                    (epoch_candidate(), shard_keys.base, *fields),
                )
            )
        results = await run_calls(self.redis, calls)
        pieces = []
        readers: dict[str, dict[int, int]] = {}
        for (shard, ids), (live_id, live, batch_id, batch, day_readers, sealed) in zip(
            by_shard.items(), results, strict=True
        ):
            shard_keys = self.keys.shard(shard)
            found = [(live_id, live), *((piece[0], piece[1]) for piece in sealed)]
            if batch_id is not None:
                found.append((batch_id, batch))
            for piece_id, values in found if counts else ():
                pieces.append(
                    PendingCounts(shard_keys.batch_id(piece_id.decode()), _counts(ids, values))
                )
            for index, article_id in enumerate(ids):
                per_day = day_readers[index * len(days) : (index + 1) * len(days)]
                readers[article_id] = {
                    day: int(n) for day, n in zip(days, per_day, strict=True) if n
                }
        return Pending(pieces, readers)

    async def read_range(
        self, first_hour: int, end_hour: int, *, article_id: str | None = None
    ) -> PendingRange:
        """Every shard's pending counters in [first_hour, end_hour) (or only the shard of
        `article_id`), per piece with its batch id, and the metadata the pieces carry:
        one script call per shard."""
        shards = [self.keys.for_article(article_id)] if article_id else self.keys.all_shards()
        calls = [
            Call(
                RANGE,
                (s.live, s.batch, s.gen, s.epoch, s.sealed),
                (epoch_candidate(), s.base, first_hour, end_hour),
            )
            for s in shards
        ]
        pieces = []
        metadata: dict[str, dict[str, str]] = {}
        for shard, shard_pieces in zip(shards, await run_calls(self.redis, calls), strict=True):
            # Oldest first (the batch, the sealed pieces, then live): later metadata wins.
            for piece_id, flat in [*shard_pieces[1:], shard_pieces[0]]:
                counts: dict[str, dict[tuple[int, str], int]] = {}
                for raw_name, raw_value in zip(flat[::2], flat[1::2], strict=True):
                    kind, _, rest = raw_name.decode().partition(" ")
                    if kind == k.META:
                        metadata.setdefault(rest, {}).update(json.loads(raw_value))
                        continue
                    hour, metric, article_id = rest.split(" ", 2)
                    counts.setdefault(article_id, {})[(int(hour), metric)] = int(raw_value)
                pieces.append(PendingHours(shard.batch_id(piece_id.decode()), counts))
        return PendingRange(pieces, metadata)


def _counts(
    article_ids: Sequence[str], values: Sequence[bytes | None]
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    width = len(ALL_METRICS)
    for index, article_id in enumerate(article_ids):
        row = values[index * width : (index + 1) * width]
        found = {m: int(v) for m, v in zip(ALL_METRICS, row, strict=True) if v is not None}
        if found:
            counts[article_id] = found
    return counts
