"""`engage` events (how far readers got): validation with the field at fault, counting
through the exactly-once path (engaged seconds, engaged readers, readers per quarter),
the reader/bot/rate rules, stats' engaged_avg_s and read_through, the reports' `engaged`
and `read_through` metrics, and the pixel and AMP's URL templates."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import Client, Clock, MakeClient, flush, morning_clock, sample, stats, view
from tests.test_report_endpoints import Editor, editor_on, next_midnight
from tracker.core.settings import Settings
from tracker.web.app_keys import CLOCK

ROOT = Path(__file__).resolve().parent.parent


def engage(article_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "engage", "article_id": article_id, **fields}


async def post(client: Client, event: dict[str, Any], address: str = "10.9.0.1") -> Any:
    response = await client.post("/api/v1/events", json=event, headers={"X-Forwarded-For": address})
    return response.status, await response.json()


@pytest.fixture
async def reader_client(settings: Settings, make_client: MakeClient) -> Client:
    """On a clock the test moves: engaged time counts up to the time since the view."""
    return await make_client(
        settings.with_overrides(
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),), dedup_window_s=1800
        ),
        clock=morning_clock(),
    )


def later(client: Client, seconds: float) -> None:
    clock = client.app[CLOCK]
    assert isinstance(clock, Clock)
    clock.now += seconds


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"engaged_s": 1801}, "engaged_s"),
        ({"engaged_s": -1}, "engaged_s"),
        ({"engaged_s": 2.5}, "engaged_s"),
        ({"depth": 30}, "depth"),
        ({"seq": -1}, "seq"),
        ({"seq": 100_001}, "seq"),
        ({}, "engaged_s"),  # nothing to count
    ],
)
async def test_invalid_engage_events_name_the_field(
    reader_client: Client, fields: dict[str, Any], field: str
) -> None:
    status, body = await post(reader_client, engage("en/bad", **fields))
    assert status == 400, body
    assert body["detail"]["field"] == field, body


async def test_engaged_time_and_quarters_are_counted_once_per_reader(
    reader_client: Client,
) -> None:
    article = "en/1"
    # Reader A: a view, then two engage events (the second after a return to the page).
    assert (await post(reader_client, view(article), "10.9.0.1"))[0] == 202
    later(reader_client, 120)
    first = engage(article, engaged_s=40, depth=50, prev_depth=0, seq=0, id="a-1")
    again = engage(article, engaged_s=20, depth=100, prev_depth=50, seq=1, id="a-2")
    for event in (first, again):
        assert (await post(reader_client, event, "10.9.0.1"))[0] == 202
    # A retry of an event (same id) is acknowledged and not counted again.
    assert (await post(reader_client, again, "10.9.0.1"))[0] == 202
    # Reader B reads a quarter, for 30 s.
    assert (await post(reader_client, view(article), "10.9.0.2"))[0] == 202
    later(reader_client, 60)
    b = engage(article, engaged_s=30, depth=25, seq=0, id="b-1")
    assert (await post(reader_client, b, "10.9.0.2"))[0] == 202
    # Reader A again within the de-duplication window, as a new page view: its time
    # adds, but it is not a new engaged reader, and its quarters were counted already.
    repeat = engage(article, engaged_s=10, depth=100, seq=0, id="a-3")
    assert (await post(reader_client, repeat, "10.9.0.1"))[0] == 202

    expected = {
        "engaged_readers": 2,
        "engaged_avg_s": (40 + 20 + 30 + 10) / 2,
        "read_through": 0.5,
        "read_depth": {"25": 2, "50": 1, "75": 1, "100": 1},
    }
    before = await stats(reader_client, article)
    await flush(reader_client)
    after = await stats(reader_client, article)
    for body in (before, after):
        assert {k: body[k] for k in expected} == expected, body
        assert body["views"] == 2
    # Nothing was left in Redis to count twice.
    await flush(reader_client)
    assert await stats(reader_client, article) == after


async def test_bots_and_do_not_track_count_no_engagement(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(respect_dnt=True))
    event = engage("en/bot", engaged_s=60, depth=100, seq=0)
    bot = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    assert (await client.post("/api/v1/events", json=event, headers=bot)).status == 202
    dnt = {"DNT": "1"}
    assert (await client.post("/api/v1/events", json=event, headers=dnt)).status == 202
    body = await stats(client, "en/bot")
    assert (body["engaged_readers"], body["engaged_avg_s"], body["read_through"]) == (0, 0, 0)


async def test_a_link_preview_engage_event_is_acknowledged_and_not_counted(
    client: Client,
) -> None:
    """Link-preview fetchers do not read: their engage events reach no counter, and the
    metrics say so (not accepted into Redis; ignored as not counted)."""
    preview = {"User-Agent": "TelegramBot (like TwitterBot)"}
    events = {"events": [engage("en/preview", engaged_s=30, depth=50), view("en/preview")]}
    response = await client.post("/api/v1/events", json=events, headers=preview)
    assert response.status == 202
    assert sample(client, "tracker_events_ignored_total", reason="not_counted") == 1
    assert not sample(client, "tracker_events_accepted_total", type="engage")
    assert sample(client, "tracker_events_accepted_total", type="view") == 1
    body = await stats(client, "en/preview")
    assert (body["engaged_readers"], body["engaged_avg_s"], body["previews"]["telegram"]) == (
        0,
        0,
        1,
    )


async def test_reports_rank_by_engaged_time_and_read_through(
    settings: Settings, make_client: MakeClient
) -> None:
    clock = Clock(next_midnight() + 10 * 3600)
    editor: Editor = await editor_on(
        settings.with_overrides(read_through_min_readers=3), make_client, clock
    )
    # en/long: 3 readers, 2 of them to the end, 100 s each. en/short: 4 readers, 1 to
    # the end, 20 s each. en/few: 1 reader, to the end (below the minimum of 3).
    plan = {"en/long": (3, 2, 100), "en/short": (4, 1, 20), "en/few": (1, 1, 300)}
    reader = 0
    for article, (readers, to_end, seconds) in plan.items():
        for n in range(readers):
            reader += 1
            depth = 100 if n < to_end else 50
            await editor.post(view(article), reader=reader)
            editor.clock.now += seconds
            engaged = engage(article, engaged_s=seconds, depth=depth, seq=0)
            await editor.post(engaged, reader=reader)
    await flush(editor.client)

    engaged = await editor.get("/api/v1/reports/popular", metric="engaged", period="24h")
    # Total engaged seconds; a tie goes by id.
    assert [(r["article_id"], r["value"]) for r in engaged["rows"]] == [
        ("en/few", 300),
        ("en/long", 300),
        ("en/short", 80),
    ]
    row = next(r for r in engaged["rows"] if r["article_id"] == "en/long")
    assert (row["engaged_readers"], row["engaged_avg_s"], row["read_through"]) == (3, 100.0, 0.667)

    through = await editor.get("/api/v1/reports/popular", metric="read_through", period="24h")
    assert [(r["article_id"], r["value"]) for r in through["rows"]] == [
        ("en/long", 0.667),
        ("en/short", 0.25),
    ]


# --- The pixel and AMP ----------------------------------------------------------------

AMP_VALUES = {
    "canonicalUrl": "https://news.example/amp/story",
    "title": "An AMP story",
    "documentReferrer": "https://t.me/",
    "pageViewId64": "pv64abc",
    "requestCount": "1",
    "random": "0.123",
}


def amp_config() -> dict[str, Any]:
    """The amp-analytics configuration in the README, as a web team copies it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## AMP pages", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block is not None
    config: dict[str, Any] = json.loads(block.group(1))
    return config


def expand(template: str, values: dict[str, str], depth: int = 0) -> str:
    """AMP's variable substitution: ${name} or ${name(args)} from the trigger's vars, the
    config's vars and the platform's values, each URL-encoded, until none is left."""
    assert depth < 10, template

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values[name]
        if "${" in value:
            return expand(value, values, depth + 1)
        return quote(value, safe="")

    return re.sub(r"\$\{(\w+)(?:\([^)]*\))?\}", one, template)


def amp_requests(tracker: str, trigger: str, **platform: str) -> str:
    config = amp_config()
    found = config["triggers"][trigger]
    values = {
        **AMP_VALUES,
        **config["vars"],
        "tracker": tracker,
        **config["requests"],
        **found.get("vars", {}),
        **platform,
    }
    template = config["requests"][found["request"]]
    return expand(template, values)


async def test_amp_configuration_counts_views_shares_and_engagement(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(dedup_window_s=1800), clock=morning_clock())
    config = amp_config()
    assert config["triggers"]["view"]["on"] == "visible"
    assert config["triggers"]["share"]["on"] == "click"
    assert config["triggers"]["share"]["selector"] == "[data-share]"
    article = config["vars"]["article"]

    urls = [
        amp_requests("", "view"),
        amp_requests("", "share", channel="telegram"),
        amp_requests("", "engaged", incrementalEngagedTime="42"),
        *(amp_requests("", "depth", verticalScrollBoundary=q) for q in ("25", "50", "75")),
    ]
    for url in urls:
        assert url.startswith("/p.gif?"), url
        response = await client.get(url)
        assert response.status == 200
        later(client, 60)  # the reader reads on
    body = await stats(client, article)
    assert body["views"] == 1
    assert body["shares"]["telegram"] == 1
    assert body["referrals"]["telegram"] == 1  # documentReferrer was t.me
    assert body["engaged_readers"] == 1
    assert body["engaged_avg_s"] == 42
    assert body["read_depth"] == {"25": 1, "50": 1, "75": 1, "100": 0}
    assert body["read_through"] == 0
