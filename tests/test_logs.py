"""Logs as a log pipeline reads them: with TRACKER_LOG_FORMAT=json every line of a running
`tracker serve` is one JSON object with time, level, logger, message and event; one line
per flush that moved something, one per failure with its cause; no access log."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import BROWSER_UA, process_env
from tracker.core.settings import Settings
from tracker.ops.embedded import EmbeddedRedis, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
FIELDS = {"time", "level", "logger", "message", "event"}


def lines_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    parsed = []
    for line in text.splitlines():
        record = json.loads(line)  # every line: JSON, nothing else
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


async def wait_for(path: Path, event: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [r for r in lines_of(path) if r.get("event") == event]
        if found:
            return found[-1]
        await asyncio.sleep(0.1)
    pytest.fail(f"no {event!r} line within {timeout_s} s:\n{path.read_text()}")


async def test_json_logs_have_the_fields_a_pipeline_selects_on(
    settings: Settings, own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    port = free_port()
    served = settings.with_overrides(
        redis_url=own_redis.url,
        port=port,
        flush_interval_s=0.2,
        log_format="json",
        log_level="INFO",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "serve"],
            env=process_env(served),
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        started = await wait_for(log, "started")
        async with aiohttp.ClientSession(headers={"User-Agent": BROWSER_UA}) as session:
            response = await session.post(
                f"http://127.0.0.1:{port}/api/v1/events",
                json={"type": "view", "article_id": "logs/1"},
            )
            assert response.status == 202
        flushed = await wait_for(log, "flush")
        # Redis goes away: the next runs fail, each line saying why.
        await asyncio.to_thread(own_redis.stop)
        failed = await wait_for(log, "flush_failed")
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    records = lines_of(log)
    assert records
    for record in records:
        assert set(record) >= FIELDS, record
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), record
    assert started["port"] == port
    assert (flushed["batches"], flushed["events"], flushed["rows"]) == (1, 1, 1)
    assert flushed["duration_s"] >= 0
    assert "ConnectionError" in failed["cause"] or "Redis" in failed["cause"], failed
    assert failed["level"] == "WARNING"
    assert {"stopping", "stopped"} <= {r["event"] for r in records}
    # No access log: no line tells of the request (its method, path or client).
    assert not [r for r in records if "/api/v1/events" in r["message"] or "POST" in r["message"]]
