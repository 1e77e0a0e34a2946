"""Weekly roll-ups: a long period is read as its whole weeks (once rolled up, apart from
the flush) plus its other days and hours, and answers exactly what the days alone do; a
batch that adds to a week already rolled up takes it off the list in its own transaction."""

from __future__ import annotations

import time
from datetime import date

import pytest

from tests.helpers import Client, Clock, MakeClient, flush, post_events, view
from tests.test_reports import report as report_body
from tests.test_reports import values
from tracker.core.periods import days_besides, week_of, whole_weeks
from tracker.core.settings import Settings
from tracker.core.utc import DAY_S, HOUR_S
from tracker.pg.auth import Tokens
from tracker.pg.rollups import ROLL_UP_MARGIN_S
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.timeout(120)]

# 1970-01-05 was a Monday (day 4).
MONDAY = 4


def test_weeks_run_monday_to_sunday_and_the_days_besides_them_are_kept() -> None:
    assert [week_of(MONDAY + n) for n in range(7)] == [MONDAY] * 7
    assert week_of(MONDAY + 7) == MONDAY + 7
    assert date.fromordinal(date(1970, 1, 1).toordinal() + week_of(20_000)).weekday() == 0
    # 30 days from a Wednesday: three whole weeks, five days before, four after.
    first = MONDAY + 700 + 2
    weeks = whole_weeks(first, first + 30)
    assert weeks == [MONDAY + 707, MONDAY + 714, MONDAY + 721]
    assert days_besides(first, first + 30, weeks) == [
        (first, MONDAY + 707),
        (MONDAY + 728, first + 30),
    ]
    assert whole_weeks(first, first + 6) == []
    assert days_besides(first, first + 6, []) == [(first, first + 6)]


async def report(client: Client, token: str, **params: str) -> dict[str, int]:
    return values(await report_body(client, token, **params))


async def rolled(client: Client) -> list[date]:
    rows = await client.app[SERVICES].pool.fetch("SELECT week FROM rolled_weeks ORDER BY 1")
    return [row["week"] for row in rows]


async def test_rolled_up_weeks_answer_what_the_days_do_and_a_late_batch_unrolls_its_week(
    settings: Settings, make_client: MakeClient
) -> None:
    # Six weeks of views, from a Monday some weeks ahead (Redis expiries stay future).
    start_day = week_of(int(time.time() // DAY_S)) + 8 * 7
    clock = Clock(start_day * DAY_S)
    client = await make_client(
        settings.with_overrides(rate_limit_per_min=0, dedup_window_s=0), clock=clock
    )
    sent: dict[str, int] = {}
    for day in range(start_day, start_day + 42, 2):
        clock.now = day * DAY_S + 10 * HOUR_S
        article = f"wk/{day % 3}"
        count = 1 + day % 5
        assert await post_events(client, *[view(article)] * count) == 202
        sent[article] = sent.get(article, 0) + count
        await flush(client)
    clock.now = (start_day + 42) * DAY_S + 12 * HOUR_S  # a Monday noon, six weeks on
    token = await Tokens(client.app[SERVICES].pool).create("test")
    ranges = [
        {"period": "30d"},
        {"period": "all"},
        {"from": _iso(start_day + 3), "to": _iso(start_day + 40)},
    ]
    by_days = [await report(client, token, **params) for params in ranges]
    assert by_days[1] == sent

    store = client.app[SERVICES].flusher.store
    weeks = await store.roll_up_weeks()
    assert len(weeks) == 6  # every week that has ended; this one has not
    assert await rolled(client) == weeks
    assert [await report(client, token, **params) for params in ranges] == by_days

    # The weekly rows are what is read: a wrong one shows (and is then put back).
    pool = client.app[SERVICES].pool
    await pool.execute("UPDATE article_weekly SET count = count + 1000 WHERE week = $1", weeks[2])
    changed = await report(client, token, period="30d")
    assert changed != by_days[0]
    await store.pool.execute("DELETE FROM rolled_weeks")
    assert await report(client, token, period="30d") == by_days[0]  # days again
    await store.roll_up_weeks()  # recomputed from the days: the wrong rows are gone
    assert await report(client, token, period="30d") == by_days[0]

    # Views counted in the last week but flushed after it was rolled up.
    last_week = weeks[-1]
    clock.now = (start_day + 41) * DAY_S + 22 * HOUR_S  # that Sunday night
    assert await post_events(client, *[view("wk/late")] * 7) == 202
    clock.now = (start_day + 42) * DAY_S + ROLL_UP_MARGIN_S + 3 * HOUR_S
    await flush(client)
    assert last_week not in await rolled(client)
    late = await report(client, token, period="30d")
    assert late["wk/late"] == 7
    assert await store.roll_up_weeks() == [last_week]
    assert await report(client, token, period="30d") == late


def _iso(day: int) -> str:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day).isoformat()
