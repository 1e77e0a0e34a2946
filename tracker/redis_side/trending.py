"""What is taking off right now: counted views or shares per article in the last 5, 15
or 60 minutes, from the sorted sets of 5-minute buckets the ingest round trip writes in
Redis (the current bucket as far as it has gone), against the same window before."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tracker.core.errors import InvalidInput
from tracker.redis_side.client import RedisClient
from tracker.redis_side.keys import TRENDING_BUCKET_S, TRENDING_SHARES, TRENDING_VIEWS, Keys
from tracker.redis_side.scripts import TRENDING, Call, run_calls

WINDOWS: Final = {"5m": 5, "15m": 15, "60m": 60}
KINDS: Final = {"views": TRENDING_VIEWS, "shares": TRENDING_SHARES}


@dataclass(frozen=True, slots=True)
class Rising:
    article_id: str
    value: int  # in the window
    previous: int  # in the window before

    @property
    def rise(self) -> float | None:
        """How many times the window before; None when that was nothing."""
        return round(self.value / self.previous, 2) if self.previous else None


def window_of(text: str | None) -> int:
    minutes = WINDOWS.get("15m" if text is None else text)
    if minutes is None:
        raise InvalidInput("window", f"one of {', '.join(WINDOWS)}")
    return minutes


def kind_of(text: str | None) -> str:
    kind = KINDS.get("views" if text is None else text)
    if kind is None:
        raise InvalidInput("metric", f"one of {', '.join(KINDS)}")
    return kind


class Trending:
    def __init__(self, redis: RedisClient, keys: Keys, clock: Callable[[], float]) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock

    async def top(self, kind: str, window_minutes: int, limit: int) -> list[Rising]:
        """Best first: each shard's top `limit` (an article lives in one shard, so the
        overall top is among them), in one round trip."""
        bucket = int(self.clock() // TRENDING_BUCKET_S)
        buckets = max(1, window_minutes * 60 // TRENDING_BUCKET_S)
        token = secrets.token_hex(6)
        calls = [
            Call(
                TRENDING,
                (f"{shard.base}:tmp:{token}",),
                (shard.trending_prefix, kind, bucket, buckets, limit),
            )
            for shard in self.keys.all_shards()
        ]
        found = []
        for flat in await run_calls(self.redis, calls):
            for i in range(0, len(flat), 3):
                found.append(
                    Rising(flat[i].decode(), int(float(flat[i + 1])), int(float(flat[i + 2])))
                )
        found.sort(key=lambda r: (-r.value, r.article_id))
        return found[:limit]
