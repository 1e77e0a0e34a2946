"""Changing TRACKER_REDIS_SHARDS: tracker refuses to start on data written with another
count (before, 12 recorded with 4 shards and flushed with 1 left 4 stored), and
`tracker flush --drain` carries the change out: everything pending reaches PostgreSQL,
reader sketches follow their articles, and the new count is recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.helpers import MakeClient, post_events, process_env, stats, view
from tracker.core.settings import Settings
from tracker.redis_side.preflight import StartupRefused
from tracker.web.app import create_app
from tracker.web.app_keys import SERVICES
from tracker.web.server import started

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ARTICLES = [f"reshard-{n}" for n in range(12)]


def drain(settings: Settings) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "flush", "--drain"],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def refused(settings: Settings) -> str:
    with pytest.raises(StartupRefused) as caught:
        async with started(create_app(settings, run_flusher=False)):
            pass
    return str(caught.value)


@pytest.mark.parametrize(("before", "after"), [(4, 1), (1, 4)])
async def test_a_changed_shard_count_is_refused_then_drained(
    settings: Settings, make_client: MakeClient, before: int, after: int
) -> None:
    old = settings.with_overrides(redis_shards=before)
    new = settings.with_overrides(redis_shards=after)
    writer = await make_client(old)
    for article_id in ARTICLES:
        assert await post_events(writer, view(article_id)) == 202
    uniques = [(await stats(writer, a))["uniques"] for a in ARTICLES]
    await writer.close()

    message = await refused(new)
    assert f"TRACKER_REDIS_SHARDS={after}" in message
    assert f"written with {before} shard(s)" in message
    assert "tracker flush --drain" in message

    output = await asyncio.to_thread(drain, new)
    print(output)
    assert "12 event(s)" in output
    assert f"shards: {before} -> {after}" in output

    reader = await make_client(new)
    assert [(await stats(reader, a))["views"] for a in ARTICLES] == [1] * 12
    # Today's reader sketches moved with their articles: the same readers again are
    # still one reader each.
    for article_id in ARTICLES:
        assert await post_events(reader, view(article_id)) == 202
    assert [(await stats(reader, a))["uniques"] for a in ARTICLES] == uniques == [1] * 12
    assert await refused(old) != ""  # and the old count is refused now


async def test_the_count_is_recorded_on_first_start(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(redis_shards=3))
    redis = client.app[SERVICES].redis
    assert await redis.get(f"{settings.redis_prefix}:shards") == b"3"


async def test_data_in_shards_past_the_count_is_found_without_a_record(
    settings: Settings, make_client: MakeClient
) -> None:
    """Data written by a version that did not record the count, with more shards."""
    client = await make_client(settings.with_overrides(redis_shards=4))
    for article_id in ARTICLES:
        await post_events(client, view(article_id))
    redis = client.app[SERVICES].redis
    await redis.delete(f"{settings.redis_prefix}:shards")
    await client.close()

    message = await refused(settings.with_overrides(redis_shards=2))
    assert "shard 2 holds data" in message or "shard 3 holds data" in message
