"""Editors' tokens: created and shown once, only their hash stored; a Bearer header or the
login form's cookie opens the reports; a wrong or missing token is 401, a revoked one
403; failed attempts from one address are cut off; public stats stay open."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys

import asyncpg
import pytest

from tests.helpers import Client, MakeClient, process_env
from tracker.core.settings import Settings
from tracker.pg.auth import Tokens, token_hash
from tracker.redis_side.attempts import FAILURES_PER_ADDRESS
from tracker.web.app_keys import SERVICES

REPORT = "/api/v1/reports/popular"


async def get(client: Client, token: str | None, path: str = REPORT) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return (await client.get(path, headers=headers)).status


async def test_a_created_token_opens_the_reports_and_only_its_hash_is_kept(
    client: Client, settings: Settings
) -> None:
    token = await Tokens(client.app[SERVICES].pool).create("desk")

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
    tokens = client.app[SERVICES].tokens  # revoked here: this process forgets what it cached
    token = await tokens.create("leaving")
    assert await get(client, token) == 200

    assert await get(client, None) == 401
    assert await get(client, "trk_not-a-token") == 401
    assert await tokens.revoke("leaving") == 1
    assert await get(client, token) == 403


async def test_the_public_stats_stay_open(client: Client) -> None:
    assert await get(client, None, "/api/v1/articles/a/stats") == 200
    assert await get(client, None, "/api/v1/popular") == 200


async def test_guessing_is_cut_off_after_a_few_failures_but_a_valid_token_is_not(
    client: Client,
) -> None:
    """Before: after 10 bad tokens from an address a valid one got 429 too (behind an
    untrusted proxy one client locked everyone out)."""
    valid = await Tokens(client.app[SERVICES].pool).create("desk")
    statuses = [await get(client, f"trk_guess-{n}") for n in range(FAILURES_PER_ADDRESS + 2)]

    assert statuses[:FAILURES_PER_ADDRESS] == [401] * FAILURES_PER_ADDRESS
    assert statuses[FAILURES_PER_ADDRESS:] == [429, 429]
    assert await get(client, valid) == 200


async def test_the_login_form_sets_a_strict_http_only_cookie(client: Client) -> None:
    token = await Tokens(client.app[SERVICES].pool).create("browser")

    failed = await client.post("/reports/login", data={"token": "trk_wrong"}, allow_redirects=False)
    login = await client.post("/reports/login", data={"token": token}, allow_redirects=False)
    cookie = login.headers["Set-Cookie"]
    session = login.cookies["tracker_session"].value
    page = await client.get("/reports", allow_redirects=False)
    report = await client.get(REPORT)  # the cookie the client keeps
    logout = await client.post("/reports/logout", allow_redirects=False)
    after = await client.get(REPORT)

    assert (failed.status, failed.headers["Location"]) == (303, "/reports/login?failed=1")
    assert (login.status, login.headers["Location"]) == (303, "/reports")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP, and no trusted proxy said otherwise
    assert token not in cookie  # a session id, not the token
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert report.status == 200
    assert logout.status == 303
    assert after.status == 401
    # The session ended on the server: the cookie, kept and sent again, opens nothing.
    again = await client.get(REPORT, cookies={"tracker_session": session})
    assert again.status == 401


async def test_a_login_posted_from_another_site_is_refused(client: Client) -> None:
    token = await Tokens(client.app[SERVICES].pool).create("browser")
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


async def test_bad_tokens_at_once_are_limited_exactly_and_ingest_goes_on(client: Client) -> None:
    """Before: 200 concurrent bad tokens had 105 checked against a limit of 10, and the
    burst took the Redis connections ingest needs (503)."""
    valid = await Tokens(client.app[SERVICES].pool).create("desk")

    async def view() -> int:
        response = await client.post(
            "/api/v1/events", json={"type": "view", "article_id": "during-burst"}
        )
        return response.status

    results = await asyncio.gather(
        *(get(client, f"trk_burst-{n}") for n in range(200)), *(view() for _ in range(50))
    )
    guesses, views = results[:200], results[200:]

    assert sorted(guesses).count(401) == FAILURES_PER_ADDRESS
    assert sorted(guesses).count(429) == 200 - FAILURES_PER_ADDRESS
    assert set(views) == {202}
    assert await get(client, valid) == 200


async def test_revoking_a_token_ends_its_sessions(client: Client) -> None:
    tokens = client.app[SERVICES].tokens
    token = await tokens.create("desk")
    login = await client.post("/reports/login", data={"token": token}, allow_redirects=False)
    session = login.cookies["tracker_session"].value
    assert (await client.get(REPORT, cookies={"tracker_session": session})).status == 200

    await tokens.revoke("desk")

    assert (await client.get(REPORT, cookies={"tracker_session": session})).status == 401
    conn_rows = await client.app[SERVICES].pool.fetch("SELECT revoked_at FROM editor_sessions")
    assert [row["revoked_at"] is not None for row in conn_rows] == [True]


async def test_the_cookie_is_secure_behind_a_trusted_proxy_only(
    settings: Settings, make_client: MakeClient
) -> None:
    proxied = await make_client(
        settings.with_overrides(trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    )
    token = await Tokens(proxied.app[SERVICES].pool).create("desk")
    login = await proxied.post(
        "/reports/login",
        data={"token": token},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "Secure" in login.headers["Set-Cookie"]


async def test_an_untrusted_forwarded_proto_is_not_believed(client: Client) -> None:
    token = await Tokens(client.app[SERVICES].pool).create("desk")
    login = await client.post(
        "/reports/login",
        data={"token": token},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "Secure" not in login.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data",
            b'--x\r\nContent-Disposition: form-data; name="token"\r\n\r\na\r\n',
        ),
        ("application/x-www-form-urlencoded; charset=bogus", b"token=abc"),
        ("application/x-www-form-urlencoded", b"token=\xff"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="t'),
    ],
    ids=["no boundary", "bogus charset", "not utf-8", "cut multipart"],
)
async def test_a_login_form_tracker_cannot_read_goes_back_with_a_message(
    client: Client, content_type: str, body: bytes
) -> None:
    """Before: each of these was a 500 with a traceback."""
    response = await client.post(
        "/reports/login",
        data=body,
        headers={"Content-Type": content_type},
        allow_redirects=False,
    )
    # (A cut part's header is a warning aiohttp gives, an error where warnings are
    # errors, as here: elsewhere it reads as a form without a token.)
    assert response.status == 303
    assert response.headers["Location"] == "/reports/login?failed=form"


async def test_a_slow_login_body_gets_408(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(settings.with_overrides(read_timeout_s=0.3))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /reports/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\ntoken="
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
