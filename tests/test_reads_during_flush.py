"""A reader polling while the flusher runs sees a total that never decreases and ends exact."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.helpers import MakeClient, post_events, sample, share, stats, view
from tracker.core.settings import Settings
from tracker.web.app_keys import SERVICES

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("shards", [1, 3])
async def test_totals_never_decrease_during_flushes_and_end_exact(
    settings: Settings, make_client: MakeClient, shards: int
) -> None:
    client = await make_client(
        settings.with_overrides(flush_interval_s=0.005, redis_shards=shards), run_flusher=True
    )
    sent_views = sent_shares = 0
    writing = True

    async def writer() -> None:
        nonlocal sent_views, sent_shares, writing
        for n in range(400):
            events = [view("hot")] * (1 + n % 5) + [share("hot", "telegram")]
            assert await post_events(client, *events) == 202
            sent_views += 1 + n % 5
            sent_shares += 1
            if n % 10 == 0:
                await asyncio.sleep(0.001)
        writing = False

    seen: list[tuple[int, int]] = []

    async def reader() -> None:
        while writing:
            body = await stats(client, "hot")
            seen.append((body["views"], body["shares"]["telegram"]))

    await asyncio.gather(writer(), reader())
    await client.app[SERVICES].flusher.flush_once()
    final = await stats(client, "hot")

    drops = [(a, b) for a, b in itertools.pairwise(seen) if b[0] < a[0] or b[1] < a[1]]
    flushes = sample(client, "tracker_flush_batches_total", outcome="applied")
    print(f"reads={len(seen)} flushed batches={flushes} final={final['views']}/{sent_views}")
    assert len(seen) > 50
    assert flushes is not None
    assert flushes > 10
    assert drops == []
    assert (final["views"], final["shares"]["telegram"]) == (sent_views, sent_shares)
    assert all(v <= sent_views and s <= sent_shares for v, s in seen)
