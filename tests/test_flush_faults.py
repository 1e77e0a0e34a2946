"""The flusher's exactly-once shape, with a crash injected in each gap between its steps.

Crashes are injected by making one step raise, as a killed process or a dropped
connection would leave things; Redis and Postgres are the real servers.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import wait_until
from tests.helpers import Client, MakeClient, flush, post_events, sample, share, stats, view
from tracker.core.errors import DatabaseUnavailable, RedisUnavailable
from tracker.core.settings import Settings
from tracker.events.counts import Batch
from tracker.flush.background import make_flusher
from tracker.flush.flusher import Flusher
from tracker.pg.store import Store
from tracker.redis_side.batches import RedisBatches
from tracker.web.app_keys import KEYS, METRICS, SERVICES


async def stored_totals(settings: Settings) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT article_id, metric, count FROM article_totals")
        hourly = await conn.fetch(
            "SELECT article_id, metric, sum(count) AS count FROM article_hourly "
            "GROUP BY article_id, metric"
        )
    finally:
        await conn.close()
    totals = {(r["article_id"], r["metric"]): r["count"] for r in rows}
    assert totals == {(r["article_id"], r["metric"]): r["count"] for r in hourly}
    return totals


async def test_crash_after_claim_before_commit_resumes_the_batch(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await post_events(client, view("x"), view("x"), share("x", "email"))

    async def postgres_dies(*args: object) -> bool:
        raise DatabaseUnavailable("connection lost mid-transaction")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "apply", postgres_dies)
        with pytest.raises(DatabaseUnavailable):
            await flush(client)
    # The batch key waits in Redis; reads still count it, once.
    assert (await stats(client, "x"))["views"] == 2
    await post_events(client, view("x"))  # lands in a fresh live hash

    result = await flush(client)

    # The left-over batch first (resumed), then the live hash cut in the same run.
    assert (result.batches, result.events) == (2, 4)
    assert await stored_totals(settings) == {("x", "view"): 3, ("x", "share:email"): 1}
    assert (await stats(client, "x"))["views"] == 3


async def test_crash_after_commit_before_release_is_not_applied_twice(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await post_events(client, view("y"), view("y"))

    async def redis_dies(*args: object) -> bool:
        raise RedisUnavailable("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(RedisBatches, "release", redis_dies)
        with pytest.raises(RedisUnavailable):
            await flush(client)
    # Committed in Postgres and still in Redis: a read counts it once, not twice.
    assert (await stats(client, "y"))["views"] == 2

    result = await flush(client)

    assert (result.batches, result.skipped) == (0, 1)
    assert await stored_totals(settings) == {("y", "view"): 2}
    assert (await stats(client, "y"))["views"] == 2
    assert sample(client, "tracker_flush_batches_total", outcome="already_applied") == 1
    assert sample(client, "tracker_flush_failures_total", reason="redis") == 1
    # Moved once: counted as the batch left Redis, though the attempt that applied it failed.
    assert sample(client, "tracker_flush_events_total") == 2
    assert sample(client, "tracker_flush_rows_total") == 1


async def test_stale_flusher_cannot_delete_a_newer_batch(client: Client) -> None:
    app = client.app
    await post_events(client, view("z"))
    shard = app[KEYS].for_article("z")
    batches, store = app[SERVICES].batches, Store(app[SERVICES].pool)
    old = (await batches.claim(shard.shard)).batch
    assert old is not None
    await batches.load(old)
    assert (await store.apply(old)).parts_now == 1
    assert await batches.release(old)
    await post_events(client, view("z"))
    newer = (await batches.claim(shard.shard)).batch
    assert newer is not None
    assert newer.id != old.id

    # The stale flusher wakes up and releases what it holds: the newer batch must stay.
    assert not await batches.release(old)

    assert await app[SERVICES].redis.exists(shard.batch) == 1
    assert (await stats(client, "z"))["views"] == 2


async def test_concurrent_flushers_count_each_event_once(
    client: Client, settings: Settings
) -> None:
    app = client.app
    flushers = [
        make_flusher(settings, app[SERVICES].redis, app[SERVICES].pool, app[METRICS])
        for _ in range(3)
    ]
    sent = 0

    async def send() -> None:
        nonlocal sent
        for n in range(60):
            events = [view(f"c{n % 7}"), share(f"c{n % 5}", "whatsapp")]
            assert await post_events(client, *events) == 202
            sent += 2
            await asyncio.sleep(0)

    async def flush_a_lot(flusher: Flusher) -> None:
        for _ in range(40):
            await flusher.run_once_logged()
            await asyncio.sleep(0.001)

    await asyncio.gather(send(), *(flush_a_lot(f) for f in flushers))
    await app[SERVICES].flusher.flush_once()

    totals = await stored_totals(settings)
    assert sum(totals.values()) == sent == 120
    assert totals[("c0", "view")] == len([n for n in range(60) if n % 7 == 0])


async def test_reads_between_a_flush_commit_and_release_never_double_count(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst interleaving, forced: Redis is read, then a whole flush commits, then
    Postgres is read. The piece read from Redis must be dropped, not added."""
    await post_events(client, *[view("m")] * 5)
    real_totals = Store.totals_with_applied
    flushed_inside_read = 0

    async def flush_then_read(*args: object, **kwargs: object) -> object:
        nonlocal flushed_inside_read
        result = await client.app[SERVICES].flusher.flush_once()
        flushed_inside_read += result.batches
        return await real_totals(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(Store, "totals_with_applied", flush_then_read)
        during = await stats(client, "m")

    assert flushed_inside_read == 1
    assert during["views"] == 5
    assert (await stats(client, "m"))["views"] == 5


async def test_flush_with_nothing_pending_does_nothing(client: Client) -> None:
    result = await flush(client)
    assert (result.batches, result.skipped, result.events) == (0, 0, 0)


async def test_unexpected_error_does_not_end_the_background_flusher(
    settings: Settings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(settings.with_overrides(flush_interval_s=0.02), run_flusher=True)
    real_apply = Store.apply
    calls = 0

    async def buggy_once(store: Store, batch: Batch) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a bug")
        return await real_apply(store, batch)

    monkeypatch.setattr(Store, "apply", buggy_once)
    await post_events(client, view("bug"))

    async def flushed() -> bool:
        pending = await client.app[SERVICES].batches.pending_stats()
        return calls >= 2 and pending.events == 0

    await wait_until(flushed, timeout_s=10)
    assert sample(client, "tracker_flush_failures_total", reason="error") == 1
    assert await stored_totals(settings) == {("bug", "view"): 1}


async def test_a_release_takes_the_batch_off_each_articles_pending_activity(
    client: Client,
) -> None:
    """The shard's activity (an upper bound of each article's pending counts, for
    reports) loses what the released batch held: an article all in it leaves the set, one
    counted again since keeps what came after, one never in it is untouched."""
    app = client.app
    redis = app[SERVICES].redis
    activity = app[KEYS].shard(0).activity
    await post_events(client, view("act/all"), view("act/all"), view("act/again"))
    batches, store = app[SERVICES].batches, Store(app[SERVICES].pool)
    batch = (await batches.claim(0)).batch
    assert batch is not None
    await post_events(client, view("act/again"), view("act/new"))
    await batches.load(batch)
    await store.apply(batch)
    assert await batches.release(batch)
    scores = dict(await redis.zrange(activity, 0, -1, withscores=True))
    assert scores == {b"act/again": 1.0, b"act/new": 1.0}
