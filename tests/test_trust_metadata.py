"""Nothing an anonymous client sends renames or re-links an article: metadata comes from
editors, the article's own page, or (only where the operator trusts them) events; an
event's metadata is otherwise at most a first claim, shown to editors as unverified and
never to readers. Refused, repeated and address-limited events write none.

Before: one event, even a repeat, one answered 429, through the pixel or /api/event,
replaced the title, URL, category, author and group editors saw and the most-read box
linked to (`"url": "https://evil.example/phish"` made the widget link there)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import subprocess
import sys
from importlib import resources
from typing import Any

import asyncpg
import pytest

from tests.helpers import BROWSER_UA, Client, Clock, MakeClient, flush, process_env, view
from tests.test_report_endpoints import HOUR, Editor, editor_on, next_midnight
from tracker.core.metadata import FIELDS, PAGE_FIELDS
from tracker.core.settings import Settings
from tracker.events import plausible
from tracker.pg import importer, migrations
from tracker.pg import queries as q
from tracker.web.app_keys import SERVICES

PROXY = (ipaddress.ip_network("127.0.0.1/32"),)
FORGED = {"title": "FORGED", "url": "https://evil.example/phish", "category": "crime",
          "author": "Mallory", "group": "evil-group"}  # fmt: skip


async def shown(client: Client, article_id: str) -> dict[str, Any] | None:
    row = await client.app[SERVICES].pool.fetchrow(
        "SELECT title, url, category, author, group_id, verified FROM articles "
        "WHERE article_id = $1",
        article_id,
    )
    return dict(row) if row is not None else None


async def most_read(client: Client, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/popular", params={"period": "24h", **params})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    articles: list[dict[str, Any]] = body["articles"]
    return articles


async def report_row(editor: Editor, article_id: str) -> dict[str, Any]:
    body = await editor.get("/api/v1/reports/popular", period="24h")
    return next(row for row in body["rows"] if row["article_id"] == article_id)


async def editor(settings: Settings, make_client: MakeClient) -> Editor:
    return await editor_on(
        settings.with_overrides(dedup_window_s=1800),
        make_client,
        Clock(next_midnight() + 10 * HOUR),
    )


async def put(editor: Editor, article_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await editor.client.put(
        f"/api/v1/articles/{article_id}", json=body, headers=editor.headers
    )
    return response.status, await response.json()


async def test_a_forged_event_does_not_rename_or_relink_a_verified_article(
    settings: Settings, make_client: MakeClient
) -> None:
    desk = await editor(settings, make_client)
    status, body = await put(
        desk,
        "t-1",
        {"title": "Budget vote", "url": "https://news.example/t-1", "category": "politics"},
    )
    assert status == 200, body
    assert body["verified"] is True
    assert body["sources"]["editor"]["title"] == "Budget vote"
    await desk.post(view("t-1"), view("t-1"), reader=1)
    # The attack: a view (counted), its repeat, and the pixel, all saying otherwise.
    await desk.post(view("t-1", **FORGED), reader=2)
    await desk.post(view("t-1", **FORGED), reader=2)
    pixel = await desk.client.get(
        "/p.gif", params={"a": "t-1", "ti": "FORGED", "u": "https://evil.example/phish"}
    )
    assert pixel.status == 200
    await flush(desk.client)

    assert await shown(desk.client, "t-1") == {
        "title": "Budget vote", "url": "https://news.example/t-1", "category": "politics",
        "author": None, "group_id": None, "verified": True,
    }  # fmt: skip
    row = await report_row(desk, "t-1")
    assert (row["title"], row["url"], row["verified"]) == (
        "Budget vote",
        "https://news.example/t-1",
        True,
    )
    assert await most_read(desk.client) == [
        {"article_id": "t-1", "title": "Budget vote", "url": "https://news.example/t-1",
         "views": 4},
    ]  # fmt: skip


async def test_an_events_metadata_is_a_first_claim_shown_unverified_and_never_to_readers(
    settings: Settings, make_client: MakeClient
) -> None:
    desk = await editor(settings, make_client)
    await desk.post(view("c-1", title="First title", url="https://news.example/c-1"), reader=1)
    await desk.post(view("c-1", **FORGED), reader=2)  # a later claim changes nothing
    await flush(desk.client)

    row = await report_row(desk, "c-1")
    assert (row["title"], row["verified"]) == ("First title", False)
    assert await most_read(desk.client) == []  # not verified: not on the site's pages
    # Once an editor speaks, the claim is gone.
    status, _ = await put(desk, "c-1", {"title": "Checked title"})
    assert status == 200
    assert (await report_row(desk, "c-1"))["title"] == "Checked title"
    # (Another list than the one asked above: that one is kept 30 s.)
    assert [a["title"] for a in await most_read(desk.client, limit="5")] == ["Checked title"]


async def test_trusted_events_set_metadata_but_not_over_the_editors(
    settings: Settings, make_client: MakeClient
) -> None:
    desk = await editor(settings.with_overrides(trust_event_metadata=True), make_client)
    await desk.post(view("e-1", title="Old", url="https://news.example/e-1"), reader=1)
    await desk.post(view("e-1", title="Corrected", author="M. Keller"), reader=2)
    await flush(desk.client)
    assert await shown(desk.client, "e-1") == {
        "title": "Corrected", "url": "https://news.example/e-1", "category": None,
        "author": "M. Keller", "group_id": None, "verified": True,
    }  # fmt: skip

    await put(desk, "e-1", {"title": "The editors' title"})
    await desk.post(view("e-1", title="A sender's later title"), reader=3)
    await flush(desk.client)
    shown_now = await shown(desk.client, "e-1")
    assert shown_now is not None
    assert (shown_now["title"], shown_now["author"]) == ("The editors' title", "M. Keller")


async def test_refused_repeated_and_address_limited_events_write_no_metadata(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(
            trust_event_metadata=True,
            dedup_window_s=1800,
            max_readers_per_address=1,
            rate_limit_per_min=2.0,
            trusted_proxies=PROXY,
        )
    )

    async def post(event: dict[str, Any], address: str, agent: str = BROWSER_UA) -> int:
        response = await client.post(
            "/api/v1/events", json=event, headers={"X-Forwarded-For": address, "User-Agent": agent}
        )
        return response.status

    assert await post(view("r-1", title="Counted"), "203.0.113.1") == 202
    assert await post(view("r-1", title="A repeat"), "203.0.113.1") == 202
    # Another reader of the same address, past its bound of one.
    assert await post(view("r-1", title="Limited"), "203.0.113.1", BROWSER_UA + " X") == 429
    # Over the rate (two events a minute): refused, and no article row for it either.
    assert await post(view("r-2", title="Refused"), "203.0.113.1") == 429
    assert await post(view("r-3", title="Limited too"), "203.0.113.2") == 202
    assert await post(view("r-3", title="Limited too"), "203.0.113.2", BROWSER_UA + " X") == 202
    await flush(client)

    assert (await shown(client, "r-1") or {}).get("title") == "Counted"
    assert await shown(client, "r-2") is None
    assert (await shown(client, "r-3") or {}).get("title") == "Limited too"
    count = await client.app[SERVICES].pool.fetchval("SELECT count(*) FROM articles")
    assert count == 2


async def test_editors_put_needs_a_token_and_names_the_field_at_fault(
    settings: Settings, make_client: MakeClient
) -> None:
    desk = await editor(settings, make_client)
    anonymous = await desk.client.put("/api/v1/articles/p-1", json={"title": "x"})
    assert anonymous.status == 401
    for body, field in (
        ({"url": "javascript:alert(1)"}, "url"),
        ({"title": "x" * 513}, "title"),
        ({"group": "has space"}, "group"),
        ({"published": "yesterday"}, "published"),
        ({"colour": "red"}, "colour"),
    ):
        status, answer = await put(desk, "p-1", body)
        assert (status, answer["detail"]["field"]) == (400, field), answer
    response = await desk.client.put(
        "/api/v1/articles/p-1",
        data=b"title",
        headers={**desk.headers, "Content-Type": "text/plain"},
    )
    assert response.status == 415
    # Described before it is read; GET tells where each value comes from.
    status, _ = await put(desk, "p-1", {"title": "Ahead", "published": "2026-12-01T08:00:00Z"})
    assert status == 200
    described = await desk.get("/api/v1/articles/p-1")
    assert described["title"] == "Ahead"
    assert described["published"].startswith("2026-12-01T08:00:00")
    assert described["sources"] == {
        "editor": {"title": "Ahead", "published": "2026-12-01T08:00:00+00:00"}
    }


async def test_metadata_events_wrote_before_becomes_an_unverified_claim_on_upgrade(
    database_url: str,
) -> None:
    """What events wrote before this release was never checked."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(q.MIGRATIONS_TABLE)
        for migration in migrations.load_migrations():
            if migration.version == 7:
                await conn.execute(
                    "INSERT INTO articles (article_id, title, url, category) "
                    "VALUES ('old-1', 'FORGED', 'https://evil.example/phish', 'crime'), "
                    "('old-2', NULL, NULL, NULL)"
                )
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(q.RECORD_MIGRATION, migration.version, migration.name)
        sources = [
            dict(r)
            for r in await conn.fetch("SELECT article_id, source, title FROM article_sources")
        ]
        verified = await conn.fetchval("SELECT bool_or(verified) FROM articles")
    finally:
        await conn.close()
    assert sources == [{"article_id": "old-1", "source": 4, "title": "FORGED"}]
    assert verified is False


def test_tracker_js_sends_the_metadata_fields_python_defines() -> None:
    """metadata.py defines the fields once; tracker.js's list follows it (the page's URL
    is sent as the event's own `url`)."""
    source = (resources.files("tracker") / "static" / "tracker.js").read_text()
    found = re.search(r"var META = \[([^\]]*)\];", source)
    assert found is not None
    assert tuple(json.loads(f"[{found.group(1)}]")) == PAGE_FIELDS


def test_the_importer_and_plausible_follow_the_metadata_fields() -> None:
    assert set(importer.METADATA_COLUMNS) == set(FIELDS)
    assert set(plausible.METADATA_PROPS) == set(PAGE_FIELDS)


@pytest.mark.slow
async def test_the_article_command_sets_and_shows_what_editors_say(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings)  # the schema, and a pool to look with

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracker", "article", *args],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    set_ = await asyncio.to_thread(
        command, "set", "cmd/1", "--title", "From the desk", "--url", "https://news.example/cmd/1"
    )
    more = await asyncio.to_thread(command, "set", "cmd/1", "--category", "politics")
    shown_ = await asyncio.to_thread(command, "show", "cmd/1")
    bad = await asyncio.to_thread(command, "set", "cmd/1", "--url", "javascript:alert(1)")
    unknown = await asyncio.to_thread(command, "show", "cmd/none")

    assert set_.returncode == 0, set_.stderr
    assert more.returncode == 0, more.stderr
    body = json.loads(shown_.stdout)
    assert (body["title"], body["category"], body["verified"]) == (
        "From the desk",
        "politics",
        True,
    )
    assert body["sources"]["editor"]["url"] == "https://news.example/cmd/1"
    assert bad.returncode == 1
    assert "url: expected an absolute http(s) URL" in bad.stderr
    assert unknown.returncode == 1
    assert (await shown(client, "cmd/1") or {}).get("title") == "From the desk"
