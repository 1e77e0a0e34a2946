"""Concurrent requests share Redis round trips; a failed round trip answers 503 to exactly
the requests whose events it carried. A batch applied in parts that only partly
committed is never counted twice, and is finished on resume."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from tests.helpers import Client, MakeClient, flush, post_events, stats, view
from tracker.core.errors import DatabaseUnavailable, RedisUnavailable
from tracker.core.settings import Settings
from tracker.events.counts import Batch, part_of
from tracker.pg.store import Store
from tracker.redis_side.recorder import Recorded, Recorder, Request
from tracker.web.app_keys import SERVICES


async def test_concurrent_requests_share_round_trips(client: Client) -> None:
    batcher = client.app[SERVICES].batcher
    before = batcher.round_trips

    statuses = await asyncio.gather(*(post_events(client, view(f"s{n}")) for n in range(40)))

    assert statuses == [202] * 40
    round_trips = batcher.round_trips - before
    print(f"40 concurrent requests, {round_trips} Redis round trips")
    assert round_trips < 40
    assert all([(await stats(client, f"s{n}"))["views"] == 1 for n in range(40)])


async def test_failed_round_trip_answers_503_to_exactly_its_requests(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = Recorder.record
    failed: set[str] = set()
    calls = 0

    async def fail_the_second_call(
        recorder: Recorder, requests: Sequence[Request], now_s: float
    ) -> Recorded:
        nonlocal calls
        calls += 1
        if calls == 2:
            failed.update(event.article_id for request in requests for event, _ in request)
            raise RedisUnavailable("connection reset mid-batch")
        return await real_record(recorder, requests, now_s)

    monkeypatch.setattr(Recorder, "record", fail_the_second_call)
    ids = [f"b{n}" for n in range(60)]

    statuses = dict(
        zip(ids, await asyncio.gather(*(post_events(client, view(i)) for i in ids)), strict=True)
    )

    assert calls >= 2
    assert failed, "the second round trip carried no request"
    assert {i for i, status in statuses.items() if status == 503} == failed
    assert {i for i, status in statuses.items() if status == 202} == set(ids) - failed
    monkeypatch.setattr(Recorder, "record", real_record)
    for article_id in ids:
        expected = 0 if article_id in failed else 1
        assert (await stats(client, article_id))["views"] == expected, article_id


async def test_batch_with_only_some_parts_committed_is_finished_on_resume(
    settings: Settings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(settings.with_overrides(flush_parallelism=2))
    ids = [f"p{n}" for n in range(20)]
    assert {part_of(i, 2) for i in ids} == {0, 1}
    await post_events(client, *[view(i) for i in ids])
    real_apply_part = Store._apply_part

    async def part_one_fails(store: Store, part: Batch, number: int) -> bool:
        if number == 1:
            raise asyncpg.PostgresConnectionError("connection lost")
        return await real_apply_part(store, part, number)

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_apply_part", part_one_fails)
        with pytest.raises(DatabaseUnavailable):
            await flush(client)

    # Part 0 is in Postgres and the whole batch still in Redis: each article counted once.
    assert [(await stats(client, i))["views"] for i in ids] == [1] * 20
    result = await flush(client)
    assert result.batches == 1  # part 1 applied now, part 0 skipped
    assert [(await stats(client, i))["views"] for i in ids] == [1] * 20
    conn = await asyncpg.connect(settings.database_url)
    try:
        parts = await conn.fetch("SELECT part, parts FROM applied_batches ORDER BY part")
        total = await conn.fetchval("SELECT sum(count) FROM article_totals WHERE metric = 'view'")
    finally:
        await conn.close()
    assert [tuple(r) for r in parts] == [(0, 2), (1, 2)]
    assert total == 20


async def test_pruning_keeps_the_record_of_a_batch_still_in_redis(
    settings: Settings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a part committed, another kept failing past the 30-day pruning, and the
    committed part was applied again."""
    client = await make_client(settings.with_overrides(flush_parallelism=2))
    ids = [f"pr{n}" for n in range(20)]
    await post_events(client, *[view(i) for i in ids])
    real_apply_part = Store._apply_part

    async def part_one_fails(store: Store, part: Batch, number: int) -> bool:
        if number == 1:
            raise asyncpg.PostgresConnectionError("connection lost")
        return await real_apply_part(store, part, number)

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_apply_part", part_one_fails)
        with pytest.raises(DatabaseUnavailable):
            await flush(client)

    store = Store(client.app[SERVICES].pool)
    await store.prune(
        applied_batch_days=0, hourly_days=0, keep=await client.app[SERVICES].batches.batch_ids()
    )
    await flush(client)

    assert [(await stats(client, i))["views"] for i in ids] == [1] * 20
    conn = await asyncpg.connect(settings.database_url)
    try:
        total = await conn.fetchval("SELECT sum(count) FROM article_totals WHERE metric = 'view'")
    finally:
        await conn.close()
    assert total == 20
