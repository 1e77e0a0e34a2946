"""The read side of Redis: what is pending for some articles, each piece with the id of
the batch it will be applied as, and the reader counts of the recent days' sketches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from tracker.core.metadata import FIELDS
from tracker.core.utc import day_of, hour_of
from tracker.events.counts import ALL_METRICS, Pending, PendingCounts, PendingPiece, PendingSlice
from tracker.redis_side import keys as k
from tracker.redis_side.client import RedisClient
from tracker.redis_side.keys import Keys, epoch_candidate
from tracker.redis_side.scripts import READ, SLICE, Call, run_calls


def sketch_days(now_s: float) -> tuple[int, int]:
    """The days whose sketches a read asks Redis about: yesterday's may not be stored yet."""
    today = day_of(now_s)
    return today - 1, today


# A `top` past any shard's count of articles with pending activity.
EVERY_ARTICLE: Final = 2**31


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
                    (epoch_candidate(), shard_keys.sealed_prefix, *fields),
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

    async def slice(
        self,
        first_hour: int,
        end_hour: int,
        now_s: float,
        *,
        metrics: Sequence[str],
        top: int | None,
        asked: Iterable[str] = (),
        by_hour: bool = False,
    ) -> PendingSlice:
        """The pending counters of `metrics` in [first_hour, end_hour) of the articles
        `asked` about and of each shard's `top` articles by pending activity (every
        article's, when `top` is None), per piece with its batch id, and their recent
        days' readers: one script call per shard, the cost set by the articles it names."""
        by_shard: dict[int, list[str]] = {shard.shard: [] for shard in self.keys.all_shards()}
        for article_id in dict.fromkeys(asked):
            by_shard[self.keys.for_article(article_id).shard].append(article_id)
        days = sketch_days(now_s)
        head: list[str | int] = [
            first_hour,
            end_hour,
            hour_of(now_s),
            EVERY_ARTICLE if top is None else top,
            int(by_hour),
            len(metrics),
            *metrics,
            len(days),
            *days,
            len(FIELDS),
            *FIELDS,
        ]
        calls = []
        for shard, ids in by_shard.items():
            s = self.keys.shard(shard)
            keys = (s.live, s.batch, s.gen, s.epoch, s.sealed, s.activity)
            prefixes = (s.sealed_prefix, s.sketch_prefix)
            calls.append(Call(SLICE, keys, (epoch_candidate(), *prefixes, *head, *ids)))
        pieces: list[PendingPiece] = []
        candidates: list[tuple[str, int]] = []
        readers: dict[str, dict[int, int]] = {}
        metadata: dict[str, dict[str, str]] = {}
        bound = 0
        for shard, answer in zip(by_shard, await run_calls(self.redis, calls), strict=True):
            found, ranked, shard_bound, _, values, recent, metas = answer
            shard_keys = self.keys.shard(shard)
            bound = max(bound, int(float(shard_bound)))
            candidates += [
                (ranked[i].decode(), int(float(ranked[i + 1]))) for i in range(0, len(ranked), 2)
            ]
            for (piece_id, _), flat in zip(found, values, strict=True):
                counts: dict[str, dict[tuple[int, str], int]] = {}
                for i in range(0, len(flat), 4):
                    article_id, metric = flat[i].decode(), flat[i + 1].decode()
                    counts.setdefault(article_id, {})[(int(flat[i + 2]), metric)] = int(flat[i + 3])
                pieces.append(PendingPiece(shard_keys.batch_id(piece_id.decode()), counts))
            for i in range(0, len(recent), 3):
                readers.setdefault(recent[i].decode(), {})[int(recent[i + 1])] = int(recent[i + 2])
            for i in range(0, len(metas), 3):
                metadata.setdefault(metas[i].decode(), {})[metas[i + 1].decode()] = metas[
                    i + 2
                ].decode()
        candidates.sort(key=lambda pair: (-pair[1], pair[0]))
        return PendingSlice(pieces, candidates, bound, readers, metadata)


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
