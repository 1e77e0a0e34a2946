"""Hostile User-Agents: overlong ones cost nothing and count nothing, matching is linear
in the agent's length, and the RE2 matching says what crawlerdetect says."""

from __future__ import annotations

import asyncio
import random
import re
import string
import time

import pytest
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as CRAWLERS

from tests.helpers import Client, sample, stats, view
from tests.test_bots import AGENTS
from tracker.events.bots import MAX_AGENT_CHARS, TOO_LONG, BotClassifier, CrawlerPatterns
from tracker.web.app_keys import BOTS

BROWSER_TEMPLATE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.{build}.{patch} Safari/537.36"
)


def browser_agents(n: int) -> list[str]:
    """Distinct real-looking browser agents, as rotating clients send them."""
    return [
        BROWSER_TEMPLATE.format(major=100 + i % 40, build=i // 40, patch=i % 97) for i in range(n)
    ]


def corpus() -> list[str]:
    """Agents to compare the two matchers on: real ones, browsers, and one agent per
    crawler pattern that is a plain word (as a crawler would name itself)."""
    agents = [agent for _, agent, _ in AGENTS] + browser_agents(200)
    plain = [p for p in CRAWLERS if re.fullmatch(r"[A-Za-z][A-Za-z0-9 _-]{2,40}", p)]
    agents += [f"Mozilla/5.0 (compatible; {word}/1.0; +https://example.org)" for word in plain]
    agents += ["YandexSearch/1.0", "Mozilla/5.0 YandexBot/3.0", "Yandex", "yandexsearch"]
    return agents


def test_re2_matching_agrees_with_crawlerdetect() -> None:
    ours, theirs = CrawlerPatterns(), CrawlerDetect()
    agents = corpus()
    disagree = [a for a in agents if ours.is_crawler(a) != theirs.is_crawler(a)]
    print(f"{len(agents)} agents compared")
    assert len(agents) > 500
    assert disagree == []


def test_an_agent_over_the_bound_is_a_bot_without_matching() -> None:
    classifier = BotClassifier()
    agent = "Mozilla/5.0 " + "a" * MAX_AGENT_CHARS

    assert classifier.classify(agent) == TOO_LONG
    assert (classifier.hits, classifier.misses, len(classifier)) == (0, 0, 0)


def test_matching_time_grows_linearly_with_the_agent() -> None:
    """Backtracking patterns cost 33 ms at 512 characters of one letter and seconds at
    8 KB; RE2 scans each character once."""
    matcher = CrawlerPatterns()
    timings = {}
    for length in (500, 5_000, 50_000):
        agent = "a" * length
        started = time.perf_counter()
        matcher.is_crawler(agent)
        timings[length] = time.perf_counter() - started
    print({length: f"{seconds * 1e3:.2f} ms" for length, seconds in timings.items()})
    assert timings[50_000] < 0.2
    assert timings[500] < 0.005


def test_an_uncached_browser_agent_is_classified_in_microseconds() -> None:
    classifier = BotClassifier()
    agents = browser_agents(2_000)
    classifier.classify("warm-up " + agents[0])
    started = time.perf_counter()
    for agent in agents:
        classifier.classify(agent)
    per_agent_us = (time.perf_counter() - started) / len(agents) * 1e6
    print(f"{per_agent_us:.1f} us per uncached browser agent")
    # The goal is 20 us (BENCHMARKS.md measures it); a shared CI machine gets slack.
    assert per_agent_us < 200


def test_the_agent_cache_is_bounded_in_bytes() -> None:
    classifier = BotClassifier(cache_bytes=64 * 1024)
    rng = random.Random(7)
    for _ in range(5_000):
        classifier.classify("".join(rng.choices(string.ascii_letters, k=MAX_AGENT_CHARS)))

    assert classifier.cached_bytes <= 64 * 1024
    assert 0 < len(classifier) < 200


async def test_long_agents_are_acknowledged_not_counted(client: Client) -> None:
    response = await client.post(
        "/api/v1/events", json=view("ua-long"), headers={"User-Agent": "Mozilla/5.0 " + "x" * 600}
    )

    assert response.status == 202
    assert (await stats(client, "ua-long"))["views"] == 0
    assert sample(client, "tracker_events_ignored_total", reason="ua_too_long") == 1.0


async def test_8kb_agents_do_not_stall_the_event_loop(client: Client) -> None:
    """Before: two 8 KB agents held the loop for seconds (/healthz took 6.9 s)."""
    agents = ["Mozilla/5.0 " + random.choice(string.ascii_letters) * 8_000 for _ in range(20)]
    healthz: list[float] = []

    async def poll_healthz() -> None:
        for _ in range(20):
            started = time.perf_counter()
            assert (await client.get("/healthz")).status == 200
            healthz.append(time.perf_counter() - started)

    async def post(agent: str) -> int:
        response = await client.post(
            "/api/v1/events", json=view("ua-8k"), headers={"User-Agent": agent}
        )
        return response.status

    statuses, _ = await asyncio.gather(asyncio.gather(*map(post, agents)), poll_healthz())

    print(f"/healthz slowest {max(healthz) * 1e3:.1f} ms while 20 8 KB agents were posted")
    assert set(statuses) == {202}
    assert max(healthz) < 0.5
    assert (await stats(client, "ua-8k"))["views"] == 0
    assert client.app[BOTS].cached_bytes == 0  # nothing overlong was cached


@pytest.mark.parametrize("agent", ["", "   "])
async def test_empty_agents_stay_bots(client: Client, agent: str) -> None:
    response = await client.post(
        "/api/v1/events", json=view("ua-empty"), headers={"User-Agent": agent}
    )
    assert response.status == 202
    assert sample(client, "tracker_events_ignored_total", reason="empty") == 1.0
