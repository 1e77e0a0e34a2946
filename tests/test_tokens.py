"""Editors' tokens: created and shown once, only their hash stored; a Bearer header or the
login form's cookie opens the reports; a wrong or missing token is 401, a revoked one
403; failed attempts from one address are cut off; public stats stay open."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from tests.helpers import Client, process_env
from tracker.auth import MAX_FAILURES_PER_MINUTE, Tokens, token_hash
from tracker.resources import POOL, TOKENS
from tracker.settings import Settings

REPORT = "/api/v1/reports/popular"


async def get(client: Client, token: str | None, path: str = REPORT) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return (await client.get(path, headers=headers)).status


async def test_a_created_token_opens_the_reports_and_only_its_hash_is_kept(
    client: Client, settings: Settings
) -> None:
    token = await Tokens(client.app[POOL]).create("desk")

    assert await get(client, token) == 200
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT name, token_hash FROM api_tokens")
        dump = str(await conn.fetch("SELECT * FROM api_tokens"))
    finally:
        await conn.close()
    assert [(r["name"], bytes(r["token_hash"])) for r in rows] == [("desk", token_hash(token))]
    assert token not in dump


@pytest.mark.parametrize(
    "path",
    [
        REPORT,
        "/api/v1/reports/trending",
        "/api/v1/reports/takeoff",
        "/api/v1/articles/a/timeseries",
    ],
)
async def test_every_report_needs_a_token(client: Client, path: str) -> None:
    response = await client.get(path)
    body = await response.json()
    assert response.status == 401
    assert body["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_wrong_missing_and_revoked_tokens(client: Client) -> None:
    tokens = client.app[TOKENS]  # revoked here: this process forgets what it cached
    token = await tokens.create("leaving")
    assert await get(client, token) == 200

    assert await get(client, None) == 401
    assert await get(client, "trk_not-a-token") == 401
    assert await tokens.revoke("leaving") == 1
    assert await get(client, token) == 403


async def test_the_public_stats_stay_open(client: Client) -> None:
    assert await get(client, None, "/api/v1/articles/a/stats") == 200
    assert await get(client, None, "/api/v1/popular") == 200


async def test_guessing_is_cut_off_after_a_few_failures(client: Client) -> None:
    valid = await Tokens(client.app[POOL]).create("desk")
    statuses = [await get(client, f"trk_guess-{n}") for n in range(MAX_FAILURES_PER_MINUTE + 2)]

    assert statuses[:MAX_FAILURES_PER_MINUTE] == [401] * MAX_FAILURES_PER_MINUTE
    assert statuses[MAX_FAILURES_PER_MINUTE:] == [429, 429]
    assert await get(client, valid) == 429  # even a right token, from that address, for a minute


async def test_the_login_form_sets_a_strict_http_only_cookie(client: Client) -> None:
    token = await Tokens(client.app[POOL]).create("browser")

    failed = await client.post("/reports/login", data={"token": "trk_wrong"}, allow_redirects=False)
    login = await client.post("/reports/login", data={"token": token}, allow_redirects=False)
    cookie = login.headers["Set-Cookie"]
    page = await client.get("/reports", allow_redirects=False)
    report = await client.get(REPORT)  # the cookie the client keeps
    logout = await client.post("/reports/logout", allow_redirects=False)
    after = await client.get(REPORT)

    assert (failed.status, failed.headers["Location"]) == (303, "/reports/login?failed=1")
    assert (login.status, login.headers["Location"]) == (303, "/reports")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert report.status == 200
    assert logout.status == 303
    assert after.status == 401


async def test_a_login_posted_from_another_site_is_refused(client: Client) -> None:
    token = await Tokens(client.app[POOL]).create("browser")
    response = await client.post(
        "/reports/login",
        data={"token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert "Set-Cookie" not in response.headers


async def test_without_a_cookie_the_page_sends_to_the_login(client: Client) -> None:
    response = await client.get("/reports", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/reports/login")


def tracker_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
async def test_the_token_commands(client: Client, settings: Settings) -> None:
    # In a thread: a command blocking the loop would make the app shed the next request.
    created = await asyncio.to_thread(
        tracker_command, settings, "token", "create", "--name", "night desk"
    )
    token = created.stdout.strip()
    listed = await asyncio.to_thread(tracker_command, settings, "token", "list")
    works = await get(client, token)
    revoked = await asyncio.to_thread(tracker_command, settings, "token", "revoke", "night desk")
    again = await asyncio.to_thread(tracker_command, settings, "token", "revoke", "night desk")

    assert created.returncode == 0, created.stderr
    assert token.startswith("trk_")
    assert "night desk" in listed.stdout
    assert token not in listed.stdout
    assert works == 200
    assert revoked.returncode == 0
    assert again.returncode == 1
    assert "no active token" in again.stderr
