"""PostgreSQL's side of counting: apply a Batch exactly once, read what is stored.

Takes and gives plain values (counts.py); knows nothing of Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from tracker.core.utc import DAY_S, hour_of, hour_start
from tracker.events.counts import Applied, AppliedParts, Batch, Sketch, Stored
from tracker.pg import metadata_queries as mq
from tracker.pg import metadata_store, partitions, rollups
from tracker.pg import queries as q
from tracker.pg.db import Pool, database_unavailable_on_error

if TYPE_CHECKING:
    from tracker.events.counts import DayArticle


class Store:
    def __init__(self, pool: Pool, *, clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.clock = clock
        # Months (first day) whose hourly partition is known to exist.
        self._partitions: set[date] = set()

    async def apply(self, batch: Batch) -> Applied:
        """Add a batch's counters, in `batch.parts` transactions at once, each recording
        (batch id, part). A part recorded before (applied by a flusher that died before
        releasing the batch) is not added again. Raises DatabaseUnavailable if any part
        failed (the batch is then resumed later, and the parts that did commit are
        skipped)."""
        await self.ensure_partitions({hour for _, _, hour in batch.counters})
        results = await asyncio.gather(
            *(self._apply_part(part, number) for number, part in enumerate(batch.split())),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                with database_unavailable_on_error():
                    raise result
        now = sum(1 for result in results if result)
        return Applied(parts_now=now, parts_before=len(results) - now)

    async def generation_floors(self, shard: int) -> list[tuple[str, int]]:
        """The highest generation applied for each epoch the shard has had."""
        with database_unavailable_on_error():
            rows = await self.pool.fetch(q.GENERATION_FLOORS, shard)
        return [(row["epoch"], row["generation"]) for row in rows]

    async def _apply_part(self, part: Batch, number: int) -> bool:
        hour_starts: dict[int, datetime] = {}
        rows = [
            (
                article_id,
                metric,
                hour_starts.get(hour) or hour_starts.setdefault(hour, hour_start(hour)),
                count,
            )
            for (article_id, metric, hour), count in part.counters.items()
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            await rollups.hold_shared(conn)
            inserted = await conn.fetchval(
                q.INSERT_APPLIED_BATCH,
                part.id,
                number,
                part.parts,
                part.shard,
                part.events,
                len(rows),
            )
            if inserted is None:
                return False
            if rows:
                await conn.execute(q.CREATE_INCOMING)
                await conn.copy_records_to_table(q.INCOMING_TABLE, records=rows)
                await conn.execute(q.ADD_HOURLY)
                await rollups.rolled_over(conn, hour_starts)
                await conn.execute(q.ADD_TOTALS)
                await conn.execute(q.ADD_ARTICLES)
            await metadata_store.write(conn, part.metadata, part.metadata_source)
            if part.page_urls:
                pages = sorted(part.page_urls.items())
                await conn.execute(
                    mq.SET_PAGE_URLS, [a for a, _ in pages], [url for _, url in pages]
                )
            if number == 0:  # one row per shard: one part updates it, without contention
                await conn.execute(q.RAISE_GENERATION, part.shard, part.epoch, part.generation)
            return True

    async def store_sketches(self, sketches: dict[DayArticle, Sketch]) -> None:
        """Keep each day's reader sketch of an article (its own transaction: storing a
        sketch again is harmless, a later one holds every reader an earlier one did)."""
        if not sketches:
            return
        wanted = sorted(sketches)
        with database_unavailable_on_error():
            await self.pool.execute(
                q.UPSERT_DAILY_UNIQUES,
                [article_id for _, article_id in wanted],
                [day for day, _ in wanted],
                [sketches[key].data for key in wanted],
                [sketches[key].readers for key in wanted],
            )

    async def totals_with_applied(
        self, article_ids: Sequence[str], batch_ids: Sequence[str], since_day: int
    ) -> Stored:
        """Stored totals per article and metric, which of `batch_ids` are applied (and
        which parts), and the readers stored for days from `since_day` on; one snapshot."""
        with database_unavailable_on_error():
            rows = await self.pool.fetch(
                q.TOTALS_WITH_APPLIED, list(article_ids), list(batch_ids), since_day
            )
        applied: dict[str, tuple[set[int], int]] = {}
        stored = Stored(totals={}, applied={}, readers={}, readers_total={}, imported={})
        for row in rows:
            if row["ids"] is not None:
                for batch_id, number, parts in zip(
                    row["ids"], row["part_nos"], row["part_counts"], strict=True
                ):
                    applied.setdefault(batch_id, (set(), parts))[0].add(number)
            article_id = row["article_id"]
            if article_id is None:
                continue
            if row["metric"] == q.READERS_TOTAL:
                stored.readers_total[article_id] = row["count"]
            elif row["metric"].startswith(q.IMPORTED):
                metric = row["metric"].removeprefix(q.IMPORTED)
                stored.imported.setdefault(article_id, {})[metric] = row["count"]
            elif row["day"] is not None:
                stored.readers.setdefault(article_id, {})[row["day"]] = row["count"]
            else:
                stored.totals.setdefault(article_id, {})[row["metric"]] = row["count"]
        for batch_id, (done, parts) in applied.items():
            stored.applied[batch_id] = AppliedParts(parts, frozenset(done))
        return stored

    async def recent_sketches(self, since_day: int) -> list[tuple[int, str]]:
        """(day, article) of the sketches stored for days from `since_day` on."""
        with database_unavailable_on_error():
            rows = await self.pool.fetch(q.RECENT_SKETCHES, since_day)
        return [(row["day"], row["article_id"]) for row in rows]

    async def prune(
        self,
        *,
        applied_batch_days: int,
        hourly_days: int,
        keep: Sequence[str] = (),
        now_s: float | None = None,
    ) -> list[str]:
        """Forget applied batch ids older than `applied_batch_days`, except `keep` (the
        batches still in Redis), and drop the monthly partitions of hourly rows whose
        every hour is older than `hourly_days` (0: never), once every day that has ended
        is rolled up (their days stay in the daily roll-ups). Returns the partitions
        dropped."""
        now_s = time.time() if now_s is None else now_s
        await rollups.roll_up(self.pool, now_s)
        with database_unavailable_on_error():
            await self.pool.execute(q.PRUNE_APPLIED_BATCHES, applied_batch_days, list(keep))
            # Months ahead are made ready too, off the flush path.
            await self.ensure_partitions({hour_of(now_s) + n * 24 * 31 for n in range(3)})
            if hourly_days <= 0:
                return []
            cutoff = partitions.month_of(hour_of(now_s - hourly_days * DAY_S))
            return await partitions.drop_before(self.pool, cutoff, self._partitions)

    async def roll_up(self) -> rollups.Rolled:
        """Roll up the days and weeks that have ended (rollups.py)."""
        return await rollups.roll_up(self.pool, self.clock())

    async def ensure_partitions(self, hours: set[int]) -> None:
        """The monthly partitions that rows of these hours go into (created once)."""
        months = {partitions.month_of(hour) for hour in hours} - self._partitions
        if months:
            with database_unavailable_on_error():
                self._partitions |= await partitions.ensure(self.pool, months)
