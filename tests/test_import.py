"""`tracker import`: counts from a previous counter show in per-article totals and in
all-time reports, never in a period's; the same file twice changes nothing; a bad line
is named and nothing of the file is imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import Client, flush, post_events, process_env, stats, view
from tracker.core.settings import Settings
from tracker.pg import importer
from tracker.pg.auth import Tokens
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HEADER = (
    "article_id,views,shares_telegram,shares_facebook,"
    "title,url,category,lang,author,published,group\n"
)
GOOD = HEADER + (
    "imp/1,554,12,3,Budget vote,https://news.example/imp/1,politics,en,M. Keller,"
    "2026-10-01T08:00:00Z,budget\n"
    "imp/2,90,,1,Derby,https://news.example/imp/2,sport,en,A. Roth,2026-10-02,\n"
)


def run_import(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", "import", str(path)],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def imported(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    # In a thread: the app under test shares this event loop.
    return await asyncio.to_thread(run_import, settings, path)


async def table(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_imported_counts_join_the_totals_once_however_often_imported(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    await post_events(client, view("imp/1"), view("imp/1"))
    await flush(client)
    path = tmp_path / "counts.csv"
    path.write_text(GOOD)

    first = await imported(settings, path)
    after_first = await stats(client, "imp/1")
    second = await imported(settings, path)
    after_second = await stats(client, "imp/1")

    assert first.returncode == 0, first.stderr
    assert "imported 2 article(s), 5 count(s); 5 changed" in first.stdout
    assert "0 changed" in second.stdout
    assert after_first == after_second
    assert (after_first["views"], after_first["shares"]["telegram"]) == (556, 12)
    metadata = "SELECT article_id, title, category, group_id, published::date::text"
    assert await table(settings, metadata + " FROM articles ORDER BY 1") == [
        ("imp/1", "Budget vote", "politics", "budget", "2026-10-01"),
        ("imp/2", "Derby", "sport", None, "2026-10-02"),
    ]
    # No hour had them: a period's report leaves them out, all time counts them.
    token = await Tokens(client.app[SERVICES].pool).create("t")
    headers = {"Authorization": f"Bearer {token}"}
    day = await (await client.get("/api/v1/reports/popular?period=24h", headers=headers)).json()
    all_time = await (
        await client.get("/api/v1/reports/popular?period=all", headers=headers)
    ).json()
    assert [(r["article_id"], r["value"]) for r in day["rows"]] == [("imp/1", 2)]
    assert [(r["article_id"], r["value"]) for r in all_time["rows"]] == [
        ("imp/1", 556),
        ("imp/2", 90),
    ]
    assert await table(
        settings, "SELECT count(*) FROM article_hourly WHERE article_id = 'imp/2'"
    ) == [(0,)]


async def test_a_corrected_file_replaces_what_the_first_one_set(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(GOOD)
    await imported(settings, path)
    path.write_text(GOOD.replace("imp/2,90,", "imp/2,95,"))

    result = await imported(settings, path)

    assert "1 changed" in result.stdout
    assert (await stats(client, "imp/2"))["views"] == 95


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("imp/3,lots,,,,,,,,,", "line 4: views: expected a whole number, got 'lots'"),
        ("bad id,1,,,,,,,,,", "line 4: article_id: expected 1 to 128 characters"),
        ("imp/1,1,,,,,,,,,", "line 4: article_id: imp/1 is listed twice"),
        ("imp/3,1,,,,,,,,yesterday,", "line 4: published: expected ISO 8601"),
        ("imp/3,-5,,,,,,,,,", "line 4: views: must be ≥ 0, got -5"),
        ("imp/3,1,,,,,,,,,,extra", "line 4: 12 fields, the header names 11"),
        ("imp/3,1,,,T,javascript:alert(1),,,,,", "line 4: url: expected an absolute http(s) URL"),
        ('imp/3,1,,,T,"=HYPERLINK(""x"")",,,,,', "line 4: url: expected an absolute http(s) URL"),
        ("imp/3,1,,," + "x" * (200 * 1024) + ",,,,,,", "line 4: field larger than field limit"),
        ("imp/3,1,,,a\x00b,,,,,,", "line 4:"),
    ],
)
async def test_a_bad_line_is_named_and_nothing_is_imported(
    client: Client, settings: Settings, tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(GOOD + line + "\n")

    result = await imported(settings, path)

    assert result.returncode == 1
    assert message in result.stderr
    assert "nothing imported" in result.stderr
    assert await table(settings, "SELECT count(*) FROM article_imported") == [(0,)]
    assert (await stats(client, "imp/1"))["views"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            ("article_id,views,title\nimp/1,5,ok\nimp/2,3,Caf\xe9\n").encode("latin-1"),
            "line 3: not UTF-8",
        ),
        (b"article_id,views,views\nimp/1,5,3\n", "line 1: column 'views' is named twice"),
        (b"", "line 1: the file is empty"),
    ],
)
async def test_a_file_tracker_cannot_read_is_named_not_a_traceback(
    settings: Settings, tmp_path: Path, client: Client, content: bytes, message: str
) -> None:
    path = tmp_path / "counts.csv"
    path.write_bytes(content)
    result = await imported(settings, path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_imports_at_once_change_the_totals_once(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """Before: two imports of one file at once left every total at twice its count."""
    path = tmp_path / "counts.csv"
    path.write_text(GOOD)
    parsed = importer.parse(path)
    pools = [
        await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) for _ in range(4)
    ]
    try:
        await asyncio.gather(*(importer.write(pool, parsed) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()

    assert (await stats(client, "imp/1"))["views"] == 554
    assert (await stats(client, "imp/2"))["views"] == 90
    totals = "SELECT article_id, metric, count FROM article_totals ORDER BY 1, 2"
    assert await table(settings, totals) == [
        ("imp/1", "share:facebook", 3),
        ("imp/1", "share:telegram", 12),
        ("imp/1", "view", 554),
        ("imp/2", "share:facebook", 1),
        ("imp/2", "view", 90),
    ]


async def test_imported_metadata_is_the_editors_and_imported_counts_are_marked(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(GOOD)
    await imported(settings, path)
    # An event's claim changes nothing of what the file said.
    await post_events(client, view("imp/1", title="FORGED", url="https://evil.example/x"))
    await flush(client)

    described = await table(
        settings, "SELECT title, url, verified FROM articles WHERE article_id = 'imp/1'"
    )
    assert described == [("Budget vote", "https://news.example/imp/1", True)]
    body = await stats(client, "imp/1")
    assert (body["views"], body["imported"]) == (555, {"views": 554, "shares_total": 15})


async def test_an_unknown_column_is_named(
    settings: Settings, tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "counts.csv"
    path.write_text("article_id,views,likes\nimp/1,5,3\n")
    result = await imported(settings, path)
    assert result.returncode == 1
    assert "line 1: unknown column 'likes'" in result.stderr
