"""The flusher's side of the reader sketches: which changed, as they are now, and letting
them expire once PostgreSQL holds them.

Storing a sketch is idempotent (a later read of it holds every reader an earlier one
did), so sketches are stored on their own, every few seconds, outside the exactly-once
transaction of the counters: a batch's release leaves the sketches it changed in the
shard's sketches-due set; a take renames that set, and each sketch leaves the take only
once PostgreSQL holds it. A flusher that dies in between leaves the rest of the take to be
stored again; one whose lease lapsed and that finishes late removes only what it stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final, TypeVar

from tracker.core.utc import day_of
from tracker.events.counts import DayArticle, Sketch
from tracker.redis_side.client import RedisClient
from tracker.redis_side.keys import PERSISTED_SKETCH_TTL_S, Keys, sketch_expires_at
from tracker.redis_side.scripts import (
    SKETCHES,
    STORED_SKETCHES,
    TAKE_SKETCHES,
    Call,
    run_calls,
    run_one,
)

T = TypeVar("T")

# Reader sketches read or given their expiry per script call.
SKETCHES_PER_CALL: Final = 1_000


def sketch_members(changed: Iterable[DayArticle]) -> list[str]:
    """What release.lua adds to sketches-due for each (day, article)."""
    return [f"{day} {article_id}" for day, article_id in changed]


class RedisSketches:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def take(self, shard: int) -> list[DayArticle]:
        """The (day, article) of the sketches to store now: an unfinished take, else
        all that are due."""
        shard_keys = self.keys.shard(shard)
        members = await run_one(
            self.redis,
            Call(TAKE_SKETCHES, (shard_keys.sketches_due, shard_keys.sketches_taking), ()),
        )
        taken = []
        for member in members:
            day, _, article_id = member.decode().partition(" ")
            taken.append((int(day), article_id))
        return sorted(taken)

    async def read(self, shard: int, wanted: list[DayArticle]) -> dict[DayArticle, Sketch]:
        """The current sketch of each (day, article), with its count; one that is gone
        was stored and expired (a sketch expires only once stored)."""
        shard_keys = self.keys.shard(shard)
        keys = [shard_keys.uniques(day, article_id) for day, article_id in wanted]
        calls = [Call(SKETCHES, chunk, ()) for chunk in chunks(keys)]
        replies = [reply for found in await run_calls(self.redis, calls) for reply in found]
        sketches: dict[DayArticle, Sketch] = {}
        for index, day_article in enumerate(wanted):
            data, readers = replies[2 * index], replies[2 * index + 1]
            if data:
                sketches[day_article] = Sketch(bytes(data), int(readers))
        return sketches

    async def stored(
        self,
        shard: int,
        taken: list[DayArticle],
        stored: Collection[DayArticle],
        now_s: float,
    ) -> None:
        """End the take: the sketches PostgreSQL now holds may expire, a past day's soon,
        today's at the end of tomorrow unless a reader comes before (recording clears
        the expiry until the next store); each leaves the take with those that were gone."""
        shard_keys = self.keys.shard(shard)
        today = day_of(now_s)
        past_day_expires_at = int(now_s) + PERSISTED_SKETCH_TTL_S
        calls = []
        for piece in chunks(taken):
            kept = [day_article for day_article in piece if day_article in stored]
            calls.append(
                Call(
                    STORED_SKETCHES,
                    (
                        shard_keys.sketches_taking,
                        *(shard_keys.uniques(day, article_id) for day, article_id in kept),
                    ),
                    (
                        *(
                            past_day_expires_at if day < today else sketch_expires_at(day)
                            for day, _ in kept
                        ),
                        *sketch_members(piece),
                    ),
                )
            )
        await run_calls(self.redis, calls)


def chunks(items: list[T]) -> list[list[T]]:
    return [
        items[start : start + SKETCHES_PER_CALL]
        for start in range(0, len(items), SKETCHES_PER_CALL)
    ]
