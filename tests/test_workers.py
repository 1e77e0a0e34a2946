"""`tracker serve --workers N`: processes share the port, one flush lease, summed metrics."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.helpers import BROWSER_UA, exposed, process_env, scraped
from tracker.core.settings import Settings
from tracker.ops.embedded import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_two_workers_count_everything_once_and_sum_their_metrics(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = process_env(
        Settings(
            redis_url=settings.redis_url,
            database_url=settings.database_url,
            redis_prefix=settings.redis_prefix,
            port=port,
            flush_interval_s=0.2,
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            stats_cache_s=0,
        )
    )
    log = (tmp_path / "workers.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "serve", "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    events = 300
    try:
        # New connections each time, so the kernel spreads them over both workers.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            headers={"User-Agent": BROWSER_UA},
        ) as session:
            for _ in range(200):
                try:
                    async with session.get(base + "/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            for n in range(events):
                async with session.post(
                    base + "/api/v1/events",
                    json={"type": "view", "article_id": "workers"},
                    headers={"X-Forwarded-For": f"2001:db8:0:{n + 1:x}::1"},  # a /64 each
                ) as response:
                    assert response.status == 202
            await asyncio.sleep(1.0)  # a flush or more
            scrapes = []
            for _ in range(6):
                async with session.get(base + "/metrics") as response:
                    scrapes.append(await response.text())
            async with session.get(base + "/api/v1/articles/workers/stats") as response:
                views = (await response.json())["views"]
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
        log.close()

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT count FROM article_totals WHERE article_id = 'workers' AND metric = 'view'"
        )
        processes = await conn.fetchval("SELECT count(DISTINCT batch_id) FROM applied_batches")
    finally:
        await conn.close()
    output = (tmp_path / "workers.log").read_text()
    print(f"views {views}, stored {stored}, batches {processes}")
    assert exit_code == 0, output
    assert output.count("listening on") == 2
    assert views == events
    assert stored == events
    # Whichever worker answers the scrape, the counters are the sum over both workers.
    for name, labels in (
        ("tracker_events_accepted_total", {"type": "view"}),
        ("tracker_events_counted_total", {}),
        ("tracker_redis_round_trip_events_sum", {}),
    ):
        summed = {scraped(exposed(text), name, **labels) for text in scrapes}
        assert summed == {float(events)}, name
    # The lease: held by one of them (the largest of the two is exposed).
    assert {scraped(exposed(text), "tracker_flush_lease_held") for text in scrapes} == {1.0}
