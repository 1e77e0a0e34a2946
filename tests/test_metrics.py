"""/metrics: exact counts from the app's own registry, bounded labels, fresh pending gauges."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client.samples import Sample

from tests.helpers import (
    BROWSER_UA,
    Client,
    MakeClient,
    exposed,
    flush,
    sample,
    scraped,
    share,
    view,
)
from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.web.app_keys import METRICS

# Distinctive ids, so finding one in the exposition text cannot be a coincidence.
VIEWED = ["mx-view-7f3a1", "mx-view-7f3a2", "news/2026/mx-view-7f3a3"]
SHARED = [("mx-share-9c1e4", "telegram"), ("mx-share-9c1e5", "facebook")]


async def post(client: Client, payload: Any) -> int:
    response = await client.post("/api/v1/events", json=payload, headers={"User-Agent": BROWSER_UA})
    return response.status


async def post_three_views_two_shares_one_invalid(client: Client) -> None:
    """One request, so all five fall in the same hour bucket: five counter rows."""
    events = [view(a) for a in VIEWED] + [share(a, channel) for a, channel in SHARED]
    assert await post(client, {"events": events}) == 202
    assert await post(client, view("mx bad id")) == 400


async def scrape(client: Client) -> tuple[str, list[Sample]]:
    response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200, text
    assert response.content_type == "text/plain", response.headers
    return text, exposed(text)


async def test_accepted_and_rejected_events_are_counted_exactly(client: Client) -> None:
    await post_three_views_two_shares_one_invalid(client)

    _, samples = await scrape(client)

    expected = {
        ("tracker_events_accepted_total", "type", "view"): 3.0,
        ("tracker_events_accepted_total", "type", "share"): 2.0,
        ("tracker_events_rejected_total", "reason", "invalid"): 1.0,
        ("tracker_events_rejected_total", "reason", "too_large"): 0.0,
        ("tracker_events_rejected_total", "reason", "unsupported_media_type"): 0.0,
        ("tracker_events_rejected_total", "reason", "unavailable"): 0.0,
    }
    in_registry = {key: sample(client, key[0], **{key[1]: key[2]}) for key in expected}
    in_exposition = {key: scraped(samples, key[0], **{key[1]: key[2]}) for key in expected}
    assert in_registry == expected
    assert in_exposition == expected


async def test_counted_round_trips_channels_and_build_are_exposed(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800))
    await post_three_views_two_shares_one_invalid(client)
    # The same reader again: a repeat within the window is accepted and not counted.
    assert await post(client, view(VIEWED[0])) == 202
    await flush(client)

    _, samples = await scrape(client)

    assert scraped(samples, "tracker_events_accepted_total", type="view") == 4
    assert scraped(samples, "tracker_events_counted_total") == 5
    assert scraped(samples, "tracker_events_ignored_total", reason="duplicate") == 1
    assert scraped(samples, "tracker_shares_accepted_total", channel="telegram") == 1
    assert scraped(samples, "tracker_shares_accepted_total", channel="vk") == 0
    assert scraped(samples, "tracker_redis_round_trips_total", outcome="ok") == 2
    assert scraped(samples, "tracker_redis_round_trips_total", outcome="error") == 0
    assert scraped(samples, "tracker_redis_round_trip_events_count") == 2
    assert scraped(samples, "tracker_redis_round_trip_events_sum") == 6
    assert scraped(samples, "tracker_flush_lease_held") == 1
    (build,) = [s for s in samples if s.name == "tracker_build_info"]
    assert build.value == 1
    assert set(build.labels) == {"version", "python"}


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    families = {family.name for family in Metrics().registry.collect()}
    documented = {
        name.removesuffix("_total") for name in re.findall(r"^\| `(tracker_\w+)`", readme, re.M)
    } | {name.removesuffix("_total") for name in re.findall(r"`(tracker_\w+)`", readme)}
    assert families - documented == set()


async def test_zero_series_exist_before_the_first_event(client: Client) -> None:
    _, samples = await scrape(client)

    assert scraped(samples, "tracker_events_accepted_total", type="view") == 0
    assert scraped(samples, "tracker_events_rejected_total", reason="invalid") == 0
    assert scraped(samples, "tracker_flush_batches_total", outcome="applied") == 0
    assert scraped(samples, "tracker_flush_failures_total", reason="redis") == 0


async def test_flush_counts_runs_batches_events_and_rows(client: Client) -> None:
    await post_three_views_two_shares_one_invalid(client)

    result = await flush(client)
    empty = await flush(client)

    assert (result.batches, result.events, result.counters) == (1, 5, 5)
    assert (empty.batches, empty.events) == (0, 0)
    _, samples = await scrape(client)
    expected = {
        ("tracker_flush_runs_total", ()): 2.0,
        ("tracker_flush_batches_total", (("outcome", "applied"),)): 1.0,
        ("tracker_flush_batches_total", (("outcome", "already_applied"),)): 0.0,
        ("tracker_flush_events_total", ()): 5.0,
        ("tracker_flush_rows_total", ()): 5.0,
        ("tracker_flush_failures_total", (("reason", "redis"),)): 0.0,
        ("tracker_flush_failures_total", (("reason", "postgres"),)): 0.0,
        ("tracker_flush_duration_seconds_count", ()): 2.0,
    }
    assert {key: sample(client, key[0], **dict(key[1])) for key in expected} == expected
    assert {key: scraped(samples, key[0], **dict(key[1])) for key in expected} == expected
    last_success = scraped(samples, "tracker_last_flush_success_timestamp_seconds")
    assert last_success is not None
    assert last_success > 0


async def test_pending_gauges_are_refreshed_by_a_scrape_and_zero_after_flush(
    client: Client,
) -> None:
    await post_three_views_two_shares_one_invalid(client)
    await asyncio.sleep(0.05)  # so the oldest event is measurably old

    _, before = await scrape(client)
    await flush(client)
    not_rescraped = sample(client, "tracker_pending_events")
    _, after = await scrape(client)

    names = (
        "tracker_pending_events",
        "tracker_pending_counters",
        "tracker_oldest_unflushed_event_age_seconds",
    )
    pending_before = {name: scraped(before, name) for name in names}
    assert pending_before["tracker_pending_events"] == 5, pending_before
    assert pending_before["tracker_pending_counters"] == 5, pending_before
    age = pending_before["tracker_oldest_unflushed_event_age_seconds"]
    assert age is not None
    assert 0.05 <= age < 60, pending_before
    assert not_rescraped == 5, "gauges change when /metrics is scraped, not before"
    assert {name: scraped(after, name) for name in names} == dict.fromkeys(names, 0.0)


async def test_no_label_carries_an_article_id(client: Client) -> None:
    await post_three_views_two_shares_one_invalid(client)
    for article_id in VIEWED:
        assert (await client.get(f"/api/v1/articles/{article_id}/stats")).status == 200
    ids = ",".join(VIEWED + [a for a, _ in SHARED])
    assert (await client.get("/api/v1/articles/stats", params={"ids": ids})).status == 200
    await flush(client)

    text, samples = await scrape(client)

    posted = [*VIEWED, *(a for a, _ in SHARED), "mx bad id", "mx%20bad%20id"]
    leaked = [article_id for article_id in posted if article_id in text]
    assert not leaked, f"article ids in /metrics: {leaked}"
    assert "mx-" not in text
    label_values = {value for s in samples for value in s.labels.values()}
    assert not {v for v in label_values if "mx" in v}, sorted(label_values)


async def test_http_requests_are_labelled_by_route_template(client: Client) -> None:
    await client.get("/api/v1/articles/mx-route-1/stats")
    await client.get("/api/v1/articles/news/2026/mx-route-2/stats")
    await client.get("/api/v1/articles/mx%20bad/stats")
    await client.get("/api/v1/articles/stats", params={"ids": "mx-route-1,mx-route-2"})
    await post(client, view("mx-route-1"))
    await client.get("/mx-no-such-page")

    text, samples = await scrape(client)

    requests = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in samples
        if s.name == "tracker_http_requests_total"
    }
    assert requests == {
        ("/api/v1/articles/{article_id}/stats", "GET", "200"): 2.0,
        ("/api/v1/articles/{article_id}/stats", "GET", "400"): 1.0,
        ("/api/v1/articles/stats", "GET", "200"): 1.0,
        ("/api/v1/events", "POST", "202"): 1.0,
        ("unmatched", "GET", "404"): 1.0,
    }, requests
    # The scrape itself is counted once its answer is out: visible in the registry now.
    assert (
        sample(client, "tracker_http_requests_total", route="/metrics", method="GET", status="200")
        == 1
    )
    durations = {
        s.labels["route"]
        for s in samples
        if s.name == "tracker_http_request_duration_seconds_count"
    }
    assert durations == {
        "/api/v1/articles/{article_id}/stats",
        "/api/v1/articles/stats",
        "/api/v1/events",
        "unmatched",
    }
    assert "mx-" not in text


async def test_two_apps_in_one_process_have_independent_registries(
    make_client: MakeClient, settings: Settings
) -> None:
    first = await make_client(settings)
    second = await make_client(settings)

    assert await post(first, {"events": [view("mx-a"), view("mx-b")]}) == 202
    assert await post(second, share("mx-c", "vk")) == 202
    assert await post(second, view("mx bad")) == 400

    assert first.app[METRICS].registry is not second.app[METRICS].registry
    counts = (
        sample(first, "tracker_events_accepted_total", type="view"),
        sample(first, "tracker_events_accepted_total", type="share"),
        sample(first, "tracker_events_rejected_total", reason="invalid"),
        sample(second, "tracker_events_accepted_total", type="view"),
        sample(second, "tracker_events_accepted_total", type="share"),
        sample(second, "tracker_events_rejected_total", reason="invalid"),
    )
    assert counts == (2.0, 0.0, 0.0, 0.0, 1.0, 1.0), "first: view, share, invalid; second: same"
    _, first_samples = await scrape(first)
    _, second_samples = await scrape(second)
    assert scraped(first_samples, "tracker_events_accepted_total", type="view") == 2
    assert scraped(second_samples, "tracker_events_accepted_total", type="view") == 0
    # Nothing is registered on the process-wide default registry.
    default = prometheus_client.REGISTRY
    assert default.get_sample_value("tracker_events_accepted_total", {"type": "view"}) is None


def test_the_request_tally_exposes_what_the_clients_own_metrics_would() -> None:
    """One process tallies requests in plain numbers (request_tally.py): its exposition
    is the one prometheus-client's Counter and Histogram write for the same requests
    (names, labels, bucket bounds, counts and sums; the histogram's `_created` aside)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from tracker.ops import request_tally as rt

    observed = [
        ("/api/v1/events", "POST", 202, 0.0004),
        ("/api/v1/events", "POST", 202, 0.0005),  # on a bound: in its bucket ("le")
        ("/api/v1/events", "POST", 400, 0.003),
        ("/api/v1/articles/{article_id}/stats", "GET", 200, 0.0007),
        ("/api/v1/articles/{article_id}/stats", "GET", 304, 7.5),  # past every bound
    ]
    own = CollectorRegistry()
    requests = Counter(rt.REQUESTS_NAME, rt.REQUESTS_HELP, ["route", "method", "status"],
                       registry=own)  # fmt: skip
    durations = Histogram(rt.DURATION_NAME, rt.DURATION_HELP, ["route"],
                          buckets=rt.DURATION_BUCKETS_S, registry=own)  # fmt: skip
    metrics = Metrics()
    for route, method, status, seconds in observed:
        requests.labels(route, method, str(status)).inc()
        durations.labels(route).observe(seconds)
        metrics.observe_request(route, method, status, seconds)

    def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for family in registry.collect()
            if family.name in (rt.REQUESTS_NAME, rt.DURATION_NAME)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    expected = samples(own)
    assert len(expected) == 4 + 2 * (len(rt.DURATION_BUCKETS_S) + 1 + 2)
    assert samples(metrics.registry) == expected
    created = [
        s for family in metrics.registry.collect() if family.name == rt.REQUESTS_NAME
        for s in family.samples if s.name.endswith("_created")
    ]  # fmt: skip
    assert len(created) == 4
