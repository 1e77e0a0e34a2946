"""Overload: reads cannot starve the flusher of connections, every request has a
deadline, a lagging event loop sheds new requests at once, and an open-loop flood beyond
capacity keeps memory and the latency of answered requests bounded without losing an
acknowledged event."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest

from tests.helpers import (
    BROWSER_UA,
    MakeClient,
    exposed,
    post_events,
    process_env,
    sample,
    scraped,
    view,
)
from tracker.core.settings import Settings
from tracker.ops.embedded import free_port
from tracker.web.app_keys import LOOP_LAG, SERVICES
from tracker.web.overload import Deadlines


async def test_the_flusher_has_connections_of_its_own(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(database_pool_size=2), run_flusher=True)
    flusher = client.app[SERVICES].flusher
    assert flusher.store.pool is not client.app[SERVICES].pool

    # Every read connection taken, as by a flood of slow report queries.
    held = [await client.app[SERVICES].pool.acquire() for _ in range(2)]
    try:
        await post_events(client, view("starved"))
        result = await flusher.flush_once()
    finally:
        for conn in held:
            await client.app[SERVICES].pool.release(conn)
    assert result.batches == 1


async def test_a_request_past_its_deadline_is_503(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(request_timeout_s=0.3, database_timeout_s=10)
    )
    locker = await asyncpg.connect(settings.database_url)
    try:
        await locker.execute("BEGIN")
        await locker.execute("LOCK TABLE article_totals IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = await client.get("/api/v1/articles/deadline/stats")
        took = time.monotonic() - started
    finally:
        await locker.close()
    body = await response.json()
    assert response.status == 503
    assert body["error"] == "overloaded"
    assert "Retry-After" in response.headers
    assert took < 2


async def test_deadlines_cancel_the_late_in_order_and_only_them() -> None:
    deadlines = Deadlines(timeout_s=1.0)
    never = asyncio.Event()
    tasks = [asyncio.create_task(never.wait()) for _ in range(3)]
    for started, task in zip((0.0, 0.5, 2.0), tasks, strict=True):
        deadlines.enter(task, started)
    deadlines.cancel_expired(now=1.6)
    await asyncio.sleep(0)
    assert [t.cancelled() for t in tasks] == [True, True, False]
    assert deadlines.leave(tasks[0])
    assert not deadlines.leave(tasks[2])
    tasks[2].cancel()


async def test_a_lagging_loop_sheds_new_requests_but_not_health(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(max_loop_lag_s=0.05))
    time.sleep(0.3)  # the loop is held: its next sample wakes 0.3 s late
    await asyncio.sleep(0.06)
    assert client.app[LOOP_LAG].overloaded

    shed = await client.post("/api/v1/events", json=view("shed"))
    health = await client.get("/healthz")

    assert shed.status == 503
    assert (await shed.json())["error"] == "overloaded"
    assert health.status == 200
    assert sample(client, "tracker_events_rejected_total", reason="overloaded") == 1
    await asyncio.sleep(1.5)  # on time again for longer than the window
    again = await client.post("/api/v1/events", json=view("shed"))
    assert again.status == 202, (await again.text(), client.app[LOOP_LAG].lag_s)


BATCH = [view(f"flood/{n}") for n in range(100)]


async def open_loop(url: str, rate: int, seconds: float) -> list[tuple[int, float]]:
    """Requests fired on a fixed schedule whatever the answers do (an open loop, as the
    internet sends): (status, latency) of each; status 0 for no answer in 10 s."""
    results: list[tuple[int, float]] = []
    body = json.dumps({"events": BATCH})
    # Latency is counted from when a request's headers left: neither the client's own
    # queue nor its connecting is the server's doing.
    sent_at: dict[int, float] = {}
    tracing = aiohttp.TraceConfig()

    async def headers_sent(session: object, context: Any, params: object) -> None:
        sent_at[id(context.trace_request_ctx)] = time.perf_counter()

    tracing.on_request_headers_sent.append(headers_sent)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:

        async def one(n: int) -> None:
            headers = {
                "User-Agent": BROWSER_UA,
                "Content-Type": "application/json",
                "X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
            }
            context = object()
            began = time.perf_counter()
            try:
                async with session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(30),
                    trace_request_ctx=context,
                ) as r:
                    await r.read()
                    answered = time.perf_counter() - sent_at.get(id(context), began)
                    results.append((r.status, answered))
            except (aiohttp.ClientError, TimeoutError):
                results.append((0, time.perf_counter() - began))

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return results


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_an_open_loop_flood_beyond_capacity_stays_bounded(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    served = settings.with_overrides(
        port=port,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        rate_limit_per_min=0,
        max_loop_lag_s=0.2,
        request_timeout_s=1.0,
        flush_interval_s=1.0,
        log_level="WARNING",
    )
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tracker", "serve"]
    if len(os.sched_getaffinity(0)) > 1:
        # One core for tracker, the other for this flood, as the benchmark runs them.
        command = ["taskset", "-c", "0", *command]
        os.sched_setaffinity(0, {1})
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=process_env(served), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        server = psutil.Process(process.pid)
        rss_before = server.memory_info().rss
        peak = rss_before

        async def watch_memory() -> None:
            nonlocal peak
            while True:
                peak = max(peak, server.memory_info().rss)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_memory())
        # 100-event requests: one core answers several hundred a second; 1,500 is beyond.
        results = await open_loop(f"http://127.0.0.1:{port}/api/v1/events", 1_500, 6.0)
        watcher.cancel()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as scrape,
        ):
            exposition = await scrape.text()
    finally:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    answered = sorted(latency for status, latency in results if status == 202)
    client_p99 = answered[int(len(answered) * 0.99) - 1] if answered else 0.0
    # The server's own account, from each request head's arrival to its answer (what
    # the client saw adds its own lag and the kernel's queues).
    samples = exposed(exposition)
    route = {"route": "/api/v1/events"}
    total = scraped(samples, "tracker_http_request_duration_seconds_count", **route)
    within_1s = scraped(samples, "tracker_http_request_duration_seconds_bucket", le="1.0", **route)
    within_2_5s = scraped(
        samples, "tracker_http_request_duration_seconds_bucket", le="2.5", **route
    )
    growth = (peak - rss_before) / 2**20
    print(
        f"statuses {statuses}; answered within 1 s of arrival: {within_1s:.0f} of {total:.0f} "
        f"(the client measured a 202 p99 of {client_p99 * 1e3:.0f} ms); RSS grew {growth:.1f} MiB"
    )
    # Still serving under the flood: 650-1,550 of them alone on a quiet machine, 367 once
    # inside the whole suite; the bounds below are what this test is for.
    assert statuses.get(202, 0) > 250
    assert statuses.get(503, 0) > 0, "nothing was shed: the flood did not overload"
    # Bounded by the request deadline (1 s) and the lag bound, not by the flood.
    assert total == sum(statuses.values())
    assert within_2_5s == total
    # (150 MiB sufficed on a quiet machine; a busy one queues more before shedding.)
    assert growth < 200

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT coalesce(sum(count), 0) FROM article_totals WHERE metric = 'view'"
        )
    finally:
        await conn.close()
    # Everything acknowledged was stored (the final flush ran at SIGTERM); a 503 may
    # still have been stored if Redis ran it before the deadline (README).
    assert stored >= statuses[202] * len(BATCH)
