"""Reports against an independent computation: events generated over two days that cross
a month boundary, each one kept by the test; every report (period, metric, filter,
grouping, JSON and CSV) must equal the sums the test makes over the raw events, before
the flush (from Redis) and after (from PostgreSQL)."""

from __future__ import annotations

import csv
import io
import ipaddress
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import Client, Clock, MakeClient, flush
from tracker.core.settings import Settings
from tracker.pg.auth import Tokens
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.timeout(180)]
HOUR = 3_600
DAY = 86_400
CHANNELS = ("telegram", "facebook", "whatsapp")
REFERRERS = {"telegram": "https://t.me/s/news", "facebook": "https://l.facebook.com/l.php"}


def month_boundary() -> int:
    """Midnight UTC of the first day of the month after next: in the future (Redis
    expiries made from it are not past) and at a month boundary."""
    now = datetime.now(tz=UTC)
    year, month = now.year + (now.month + 1) // 12, (now.month + 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Article:
    article_id: str
    category: str
    lang: str
    author: str
    group: str | None


ARTICLES = [
    Article(f"news/{n}", ("politics", "sport", "culture")[n % 3], ("en", "de")[n % 2],
            f"author-{n % 4}", f"story-{n % 5}" if n % 2 else None)
    for n in range(12)
]  # fmt: skip


@dataclass(frozen=True)
class Sent:
    at: float
    article: Article
    metric: str  # "view", "share:<channel>" ("referral:<channel>" rides on a view)
    referral: str | None
    reader: int


def generate(start: int) -> list[Sent]:
    """About 600 events over the 36 hours around the boundary, skewed to a few articles."""
    rng = random.Random(20261126)
    sent = []
    for n in range(600):
        at = start - 20 * HOUR + rng.uniform(0, 36 * HOUR)
        article = ARTICLES[min(int(rng.expovariate(0.35)), len(ARTICLES) - 1)]
        if rng.random() < 0.25:
            sent.append(Sent(at, article, f"share:{rng.choice(CHANNELS)}", None, n))
        else:
            referral = rng.choice((None, None, "telegram", "facebook"))
            sent.append(Sent(at, article, "view", referral, n))
    return sorted(sent, key=lambda s: s.at)


async def post(client: Client, clock: Clock, event: Sent) -> None:
    clock.now = event.at
    body: dict[str, Any] = {
        "article_id": event.article.article_id,
        "category": event.article.category,
        "lang": event.article.lang,
        "author": event.article.author,
        "title": f"Title of {event.article.article_id}",
        "url": f"https://news.example/{event.article.article_id}",
    }
    if event.article.group:
        body["group"] = event.article.group
    if event.metric == "view":
        body["type"] = "view"
        if event.referral:
            body["referrer"] = REFERRERS[event.referral]
    else:
        body["type"], body["channel"] = "share", event.metric.split(":")[1]
    address = str(ipaddress.IPv4Address("10.0.0.0") + event.reader)
    response = await client.post("/api/v1/events", json=body, headers={"X-Forwarded-For": address})
    assert response.status == 202, await response.text()


# --- the independent computation ---------------------------------------------------


def hour_window(name: str, now: float) -> tuple[int, int]:
    """[first, end) in hours since the epoch, as the README defines the periods."""
    current = int(now) // HOUR
    if name == "1h":
        return current - 1, current + 1
    if name == "24h":
        return current - 24, current + 1
    days = {"7d": 7, "30d": 30}[name]
    return (int(now) // DAY - days + 1) * 24, current + 1


def wanted(metric: str) -> Callable[[Sent], int]:
    """How much one event adds to a metric."""
    kind, _, channel = metric.partition(":")

    def value(event: Sent) -> int:
        if kind == "views":
            return int(event.metric == "view")
        if kind == "shares":
            return int(event.metric.startswith("share:") and event.metric.endswith(channel))
        return int(event.referral is not None and (not channel or event.referral == channel))

    return value


def expected(
    sent: list[Sent],
    hours: tuple[int, int] | None,
    metric: str,
    key: Callable[[Article], str] = lambda a: a.article_id,
    keep: Callable[[Article], bool] = lambda a: True,
) -> dict[str, int]:
    value = wanted(metric)
    totals: Counter[str] = Counter()
    for event in sent:
        if hours and not hours[0] <= int(event.at) // HOUR < hours[1]:
            continue
        if keep(event.article) and value(event):
            totals[key(event.article)] += value(event)
    return dict(totals)


def close(estimate: int, truth: int) -> bool:
    """Readers come from HyperLogLog sketches: about 1% error, even for small counts."""
    return abs(estimate - truth) <= max(1, 0.02 * truth)


def readers(
    sent: list[Sent], days: tuple[int, int], keep: Callable[[Article], bool]
) -> dict[str, int]:
    """Readers per article: each (reader, day) once; a reader is an address here."""
    seen = {
        (event.article.article_id, event.reader, int(event.at) // DAY)
        for event in sent
        if event.metric == "view"
        and days[0] <= int(event.at) // DAY < days[1]
        and keep(event.article)
    }
    return dict(Counter(article for article, _, _ in seen))


# --- the reports ---------------------------------------------------------------------


async def report(client: Client, token: str, **params: str) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/reports/popular",
        params={"limit": "100", **params},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def values(body: dict[str, Any]) -> dict[str, int]:
    return {row["article_id"]: row["value"] for row in body["rows"] if row["value"]}


PERIODS = ("1h", "24h", "7d", "30d")
METRICS = ("views", "shares", "shares:telegram", "referrals", "referrals:facebook")
FILTERS: list[tuple[dict[str, str], Callable[[Article], bool]]] = [
    ({}, lambda a: True),
    ({"category": "politics"}, lambda a: a.category == "politics"),
    ({"lang": "de"}, lambda a: a.lang == "de"),
    ({"author": "author-1"}, lambda a: a.author == "author-1"),
]


@pytest.fixture
async def seeded(
    settings: Settings, make_client: MakeClient
) -> tuple[Client, Clock, list[Sent], str]:
    boundary = month_boundary()
    clock = Clock(boundary)
    client = await make_client(
        settings.with_overrides(
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            rate_limit_per_min=0,
            dedup_window_s=0,
        ),
        clock=clock,
    )
    sent = generate(boundary)
    for event in sent:
        await post(client, clock, event)
    clock.now = sent[-1].at + 60
    token = await Tokens(client.app[SERVICES].pool).create("test")
    return client, clock, sent, token


async def check_everything(client: Client, clock: Clock, sent: list[Sent], token: str) -> int:
    checked = 0
    for period in PERIODS:
        hours = hour_window(period, clock.now)
        for metric in METRICS:
            for params, keep in FILTERS:
                body = await report(client, token, period=period, metric=metric, **params)
                assert values(body) == expected(sent, hours, metric, keep=keep), (
                    period,
                    metric,
                    params,
                )
                checked += 1
        grouped = await report(client, token, period=period, group_by="group")
        assert values(grouped) == expected(
            sent, hours, "views", key=lambda a: a.group or a.article_id
        )
        checked += 1
    everything = await report(client, token, period="all", metric="shares")
    assert values(everything) == expected(sent, None, "shares")
    # A range given by from/to, hours exact, across the month boundary.
    start = int(sent[0].at) // HOUR * HOUR + 5 * HOUR
    end = start + 22 * HOUR
    ranged = await report(
        client, token, **{"from": _iso(start), "to": _iso(end), "metric": "views"}
    )
    assert values(ranged) == expected(sent, (start // HOUR, end // HOUR), "views")
    return checked + 2


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


async def test_reports_equal_the_sums_of_the_raw_events_before_and_after_the_flush(
    seeded: tuple[Client, Clock, list[Sent], str],
) -> None:
    client, clock, sent, token = seeded
    before = await check_everything(client, clock, sent, token)
    await flush(client)
    after = await check_everything(client, clock, sent, token)
    print(f"{len(sent)} events; {before} reports checked from Redis, {after} from PostgreSQL")


async def test_rows_carry_metadata_and_every_metric_of_the_period(
    seeded: tuple[Client, Clock, list[Sent], str],
) -> None:
    client, clock, sent, token = seeded
    await flush(client)
    body = await report(client, token, period="7d", metric="shares:telegram", limit="3")
    hours = hour_window("7d", clock.now)
    top = sorted(expected(sent, hours, "shares:telegram").items(), key=lambda kv: (-kv[1], kv[0]))[
        :3
    ]
    assert [(r["rank"], r["article_id"], r["value"]) for r in body["rows"]] == [
        (n + 1, article_id, value) for n, (article_id, value) in enumerate(top)
    ]
    row = body["rows"][0]
    article = next(a for a in ARTICLES if a.article_id == row["article_id"])
    assert (row["category"], row["lang"], row["author"], row["group"]) == (
        article.category, article.lang, article.author, article.group,
    )  # fmt: skip
    assert row["title"] == f"Title of {article.article_id}"
    assert row["published"] is not None
    assert row["views"] == expected(sent, hours, "views").get(article.article_id, 0)
    assert row["shares_total"] == expected(sent, hours, "shares").get(article.article_id, 0)
    assert row["referrals"]["telegram"] == expected(sent, hours, "referrals:telegram").get(
        article.article_id, 0
    )
    days = (int(clock.now) // DAY - 6, int(clock.now) // DAY + 1)
    assert close(row["uniques"], readers(sent, days, lambda a: True).get(article.article_id, 0))


async def test_csv_has_the_same_rows(seeded: tuple[Client, Clock, list[Sent], str]) -> None:
    client, _, _, token = seeded
    as_json = await report(client, token, period="24h", metric="views")
    response = await client.get(
        "/api/v1/reports/popular",
        params={"period": "24h", "metric": "views", "format": "csv", "limit": "100"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["rank"], r["article_id"], r["value"], r["views"]) for r in rows] == [
        (str(r["rank"]), r["article_id"], str(r["value"]), str(r["views"])) for r in as_json["rows"]
    ]
    assert rows[0]["shares_telegram"] == str(as_json["rows"][0]["shares"]["telegram"])


async def test_uniques_rank_by_readers(seeded: tuple[Client, Clock, list[Sent], str]) -> None:
    client, clock, sent, token = seeded
    await flush(client)
    days = (int(clock.now) // DAY - 6, int(clock.now) // DAY + 1)
    body = await report(client, token, period="7d", metric="uniques", category="sport")
    truth = readers(sent, days, lambda a: a.category == "sport")
    found = values(body)
    assert found.keys() == truth.keys()
    assert all(close(found[a], truth[a]) for a in truth), (found, truth)


async def test_offset_and_limit_page_through_the_ranking(
    seeded: tuple[Client, Clock, list[Sent], str],
) -> None:
    client, _, _, token = seeded
    everything = (await report(client, token, period="7d"))["rows"]
    pages = []
    for offset in range(0, len(everything), 4):
        page = await report(client, token, period="7d", limit="4", offset=str(offset))
        pages += page["rows"]
    assert [r["article_id"] for r in pages] == [r["article_id"] for r in everything]
    assert [r["rank"] for r in pages] == list(range(1, len(everything) + 1))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "2h"}, "period"),
        ({"metric": "shares:myspace"}, "metric"),
        ({"metric": "likes"}, "metric"),
        ({"limit": "101"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"group_by": "author"}, "group_by"),
        ({"format": "xml"}, "format"),
        ({"from": "yesterday"}, "from"),
        ({"to": "soon"}, "to"),
        ({"period": "", "from": "2026-11-20"}, "period"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    seeded: tuple[Client, Clock, list[Sent], str], params: dict[str, str], field: str
) -> None:
    client, _, _, token = seeded
    response = await client.get(
        "/api/v1/reports/popular", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    body = await response.json()
    assert response.status == 400, body
    assert body["detail"]["field"] == field


async def test_a_range_is_from_to_or_a_named_period_ending_at_to(
    seeded: tuple[Client, Clock, list[Sent], str],
) -> None:
    client, clock, _, token = seeded

    async def rows(**params: str) -> list[dict[str, Any]]:
        response = await client.get(
            "/api/v1/reports/popular",
            params={"metric": "views", **params},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 200, await response.text()
        return list((await response.json())["rows"])

    now = clock.now
    assert await rows(**{"from": _iso(now + 3600), "to": _iso(now - 86400)}) == []
    # `to` alone ends the named period there: the 24 hours up to now are `period=24h`.
    assert await rows(period="24h", to=_iso(now)) == await rows(period="24h")
    # `from` alone runs to now.
    assert await rows(**{"from": _iso(now - 30 * 86400)}) == await rows(
        **{"from": _iso(now - 30 * 86400), "to": _iso(now)}
    )


@pytest.mark.slow
async def test_uniques_over_7_and_30_days_are_within_two_percent(
    settings: Settings, make_client: MakeClient
) -> None:
    """Readers of 30 days (a few hundred a day, many coming back on other days): a range's
    readers are its days' readers, each day's from its sketch."""
    last_day = int(month_boundary()) // DAY + 40
    clock = Clock((last_day - 29) * DAY)
    client = await make_client(
        settings.with_overrides(
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            rate_limit_per_min=0,
            dedup_window_s=1800,
        ),
        clock=clock,
    )
    rng = random.Random(7)
    per_day = []
    for day in range(last_day - 29, last_day + 1):
        clock.now = day * DAY + 9 * HOUR
        readers_today = set(rng.sample(range(20_000), rng.randint(250, 600)))
        per_day.append(len(readers_today))
        for reader in readers_today:
            address = str(ipaddress.IPv4Address("10.0.0.0") + reader)
            response = await client.post(
                "/api/v1/events",
                json={"type": "view", "article_id": "uq/one"},
                headers={"X-Forwarded-For": address},
            )
            assert response.status == 202
        clock.now = day * DAY + 23 * HOUR
        await flush(client)
    token = await Tokens(client.app[SERVICES].pool).create("test")

    week = values(await report(client, token, period="7d", metric="uniques"))["uq/one"]
    month = values(await report(client, token, period="30d", metric="uniques"))["uq/one"]

    print(f"7 days {week} (truth {sum(per_day[-7:])}); 30 days {month} (truth {sum(per_day)})")
    assert abs(week - sum(per_day[-7:])) <= 0.02 * sum(per_day[-7:])
    assert abs(month - sum(per_day)) <= 0.02 * sum(per_day)
