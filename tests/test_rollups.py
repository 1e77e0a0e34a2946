"""Daily and weekly roll-ups, made apart from the flush: a day is summed from its hours
once it has ended, a week from its days once all seven are; later counts of a rolled-up
day or week are added to its roll-up by their flush. Reports read rolled-up weeks and days
from the roll-ups and every other hour from the hourly buckets, and answer the same."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import date
from typing import Any

import pytest

from tests.helpers import Client, Clock, MakeClient, flush, post_events, view
from tests.test_reports import report as report_body
from tests.test_reports import values
from tracker.core.periods import Period, week_of, whole_weeks
from tracker.core.settings import Settings
from tracker.core.utc import DAY_S, HOUR_S, date_of
from tracker.pg import rollup_queries, rollups
from tracker.pg.auth import Tokens
from tracker.pg.rollups import ROLL_UP_MARGIN_S
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.timeout(120)]

MONDAY = 4  # 1970-01-05, day 4, was a Monday


def test_weeks_run_monday_to_sunday() -> None:
    assert [week_of(MONDAY + n) for n in range(7)] == [MONDAY] * 7
    assert week_of(MONDAY + 7) == MONDAY + 7
    assert date_of(week_of(20_000)).weekday() == 0
    wednesday = MONDAY + 702
    assert whole_weeks(wednesday, wednesday + 30) == [MONDAY + 707, MONDAY + 714, MONDAY + 721]
    assert whole_weeks(wednesday, wednesday + 6) == []


@pytest.mark.parametrize("rolled_share", [0.0, 0.5, 1.0])
def test_a_reading_covers_every_hour_of_the_period_once(rolled_share: float) -> None:
    # 30 days and 5 hours from a Wednesday 19:00: some days and weeks rolled up.
    first_hour = (MONDAY + 702) * 24 + 19
    period = Period(first_hour, first_hour + 30 * 24 + 5)
    days = range(MONDAY + 702, MONDAY + 735)
    rolled_days = {day for n, day in enumerate(days) if n % 10 < rolled_share * 10}
    rolled_weeks = {MONDAY + 714} | ({MONDAY + 707} if rolled_share == 1.0 else set())
    reading = period.reading(rolled_days, rolled_weeks)
    covered = [
        *(h for monday in reading.weeks for h in range(monday * 24, (monday + 7) * 24)),
        *(h for start, end in reading.days for h in range(start * 24, end * 24)),
        *(h for start, end in reading.hours for h in range(start, end)),
    ]
    assert sorted(covered) == list(range(period.first_hour, period.end_hour))
    assert set(reading.weeks) <= rolled_weeks
    assert all(day in rolled_days for start, end in reading.days for day in range(start, end))
    # Ranges that meet are one range.
    for ranges in (reading.days, reading.hours):
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
    assert Period(0, 100, all_time=True).reading(rolled_days, rolled_weeks).hours == []


async def report(client: Client, token: str, **params: str) -> dict[str, int]:
    return values(await report_body(client, token, **params))


async def daily_series(client: Client, token: str, article_id: str) -> list[int]:
    response = await client.get(
        f"/api/v1/articles/{article_id}/timeseries",
        params={"period": "30d", "granularity": "day"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return [bucket["views"] for bucket in body["buckets"]]


async def listed(client: Client, table: str) -> list[date]:
    column = "day" if table == "rolled_days" else "week"
    rows = await client.app[SERVICES].pool.fetch(f"SELECT {column} FROM {table} ORDER BY 1")  # noqa: S608
    return [row[column] for row in rows]


async def test_roll_ups_answer_what_the_hours_do_and_take_late_counts_in_the_flush(
    settings: Settings, make_client: MakeClient
) -> None:
    # Six weeks of views from a Monday some weeks ahead (Redis expiries stay future).
    start_day = week_of(int(time.time() // DAY_S)) + 8 * 7
    clock = Clock(start_day * DAY_S)
    client = await make_client(
        settings.with_overrides(rate_limit_per_min=0, dedup_window_s=0), clock=clock
    )
    sent: dict[str, int] = {}
    for day in range(start_day, start_day + 42, 2):
        clock.now = day * DAY_S + 10 * HOUR_S
        article = f"ru/{day % 3}"
        count = 1 + day % 5
        assert await post_events(client, *[view(article)] * count) == 202
        sent[article] = sent.get(article, 0) + count
        await flush(client)
    pool = client.app[SERVICES].pool
    assert await pool.fetchval("SELECT count(*) FROM article_daily") == 0  # not the flush's
    clock.now = (start_day + 42) * DAY_S + 12 * HOUR_S  # a Monday noon, six weeks on
    token = await Tokens(pool).create("test")
    ranges = [
        {"period": "30d"},
        {"period": "all"},
        {"from": _iso(start_day + 3), "to": _iso(start_day + 40)},
    ]
    from_hours = [await report(client, token, **params) for params in ranges]
    assert from_hours[1] == sent
    series = await daily_series(client, token, "ru/0")

    store = client.app[SERVICES].flusher.store
    rolled = await store.roll_up()
    assert len(rolled.days) == 42
    assert len(rolled.weeks) == 6
    assert len(await listed(client, "rolled_weeks")) == 6
    assert [await report(client, token, **params) for params in ranges] == from_hours
    assert await daily_series(client, token, "ru/0") == series
    assert (await store.roll_up()).days == []  # nothing is rolled up twice

    # The roll-ups are what is read: a wrong weekly row shows.
    week = rolled.weeks[2]
    await pool.execute("UPDATE article_weekly SET count = count + 1000 WHERE week = $1", week)
    assert await report(client, token, period="30d") != from_hours[0]
    await pool.execute("UPDATE article_weekly SET count = count - 1000 WHERE week = $1", week)

    # Views counted on the last Sunday night, flushed after its day and week were rolled
    # up: the flush adds them to both roll-ups, which stay listed.
    clock.now = (start_day + 41) * DAY_S + 22 * HOUR_S
    assert await post_events(client, *[view("ru/late")] * 7) == 202
    clock.now = (start_day + 42) * DAY_S + ROLL_UP_MARGIN_S + 3 * HOUR_S
    await flush(client)
    assert rolled.weeks[-1] in await listed(client, "rolled_weeks")
    late = await report(client, token, period="30d")
    assert late == {**from_hours[0], "ru/late": 7}
    assert (
        await pool.fetchval(
            "SELECT count FROM article_weekly WHERE article_id = 'ru/late' AND week = $1",
            rolled.weeks[-1],
        )
        == 7
    )
    assert (
        await pool.fetchval("SELECT sum(count) FROM article_daily WHERE article_id = 'ru/late'")
        == 7
    )


def _iso(day: int) -> str:
    return date_of(day).isoformat()


async def test_roll_ups_racing_flushes_of_late_counts_keep_every_roll_up_equal_to_its_hours(
    settings: Settings, make_client: MakeClient
) -> None:
    """Views of a Sunday's last hour flushed in many small batches while that day and its
    week are rolled up: whichever commits first, each roll-up ends equal to its hours."""
    monday = week_of(int(time.time() // DAY_S)) + 9 * 7
    clock = Clock((monday - 1) * DAY_S + 23 * HOUR_S)  # Sunday 23:00
    client = await make_client(
        settings.with_overrides(rate_limit_per_min=0, dedup_window_s=0), clock=clock
    )
    services = client.app[SERVICES]
    # The week's other days have counts of their own, flushed and rolled up as they end.
    for day in range(monday - 7, monday - 1):
        clock.now = day * DAY_S + 12 * HOUR_S
        assert await post_events(client, view("race/early")) == 202
    clock.now = (monday - 1) * DAY_S + 23 * HOUR_S
    await flush(client)
    await rollups.roll_up(services.pool, (monday - 1) * DAY_S + 2 * HOUR_S)  # up to Saturday

    async def late_views() -> None:
        for n in range(40):
            assert await post_events(client, *[view(f"race/{n % 4}")] * 5) == 202
            await services.flusher.flush_once()

    async def roll_ups() -> None:
        after = monday * DAY_S + ROLL_UP_MARGIN_S + HOUR_S
        for _ in range(20):
            await rollups.roll_up(services.pool, after)
            await asyncio.sleep(0.005)

    await asyncio.gather(late_views(), roll_ups())
    await services.flusher.flush_once()
    await rollups.roll_up(services.pool, monday * DAY_S + ROLL_UP_MARGIN_S + HOUR_S)

    pool = services.pool
    assert await listed(client, "rolled_weeks") == [date_of(monday - 7)]
    hourly = await pool.fetch(
        "SELECT article_id, metric, (hour AT TIME ZONE 'UTC')::date AS day, sum(count) AS n"
        " FROM article_hourly GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    daily = await pool.fetch(
        "SELECT article_id, metric, day, count AS n FROM article_daily ORDER BY 1, 2, 3"
    )
    weekly = await pool.fetch(
        "SELECT article_id, metric, sum(count) AS n FROM article_weekly GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert [tuple(r) for r in daily] == [tuple(r) for r in hourly]
    per_article: dict[tuple[str, str], int] = {}
    for row in hourly:
        key = (row["article_id"], row["metric"])
        per_article[key] = per_article.get(key, 0) + row["n"]
    assert {(r["article_id"], r["metric"]): r["n"] for r in weekly} == per_article
    assert sum(n for (article, _), n in per_article.items() if article.startswith("race/")) == (
        6 + 200
    )


async def test_a_day_another_flusher_rolled_up_meanwhile_is_left_as_it_is(
    settings: Settings, make_client: MakeClient
) -> None:
    """Two upkeeps that both found a day due: the second leaves it, even once its hours
    are gone (pruned), rather than summing what is left of them."""
    day = week_of(int(time.time() // DAY_S)) + 70
    clock = Clock(day * DAY_S + 9 * HOUR_S)
    client = await make_client(settings.with_overrides(rate_limit_per_min=0), clock=clock)
    assert await post_events(client, *[view("twice/a")] * 3) == 202
    await flush(client)
    pool = client.app[SERVICES].pool
    assert (await rollups.roll_up(pool, (day + 2) * DAY_S)).days == [date_of(day)]
    await pool.execute("DELETE FROM article_hourly")  # as pruning its month would
    await rollups._roll_up_each(  # the second upkeep, its due list in hand
        pool, [date_of(day)], rollup_queries.ROLL_UP_DAY, rollup_queries.MARK_DAY, ["view"]
    )
    assert await pool.fetchval("SELECT sum(count) FROM article_daily") == 3
