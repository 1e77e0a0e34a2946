"""Smaller findings of the outside review: exports safe to open, report tables that never
read the data as markup, a pixel that always answers its GIF, limits per IPv6 /64.

Before: a title `=HYPERLINK(...)` went into the CSV as a formula; `[/oops]` in a title
made `tracker report` exit 1 and `[link=...]` made a terminal link; `/p.gif?e=²` gave a
500; each address of one IPv6 /64 had limits of its own."""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import subprocess
import sys

import pytest

from tests.helpers import (
    BROWSER_UA,
    Client,
    Clock,
    MakeClient,
    flush,
    process_env,
    sample,
    stats,
    view,
)
from tests.test_report_endpoints import Editor, editor_on
from tracker.core.settings import Settings
from tracker.redis_side.readers import address_id, client_address, client_of
from tracker.web.report_views import csv_cell

FORMULA = '=HYPERLINK("http://evil.example","x")'
FORMULAS = (FORMULA, "+1+1", "-2+3", "@SUM(A1)")


def csv_titles(text: str) -> dict[str, str]:
    return {row["article_id"]: row["title"] for row in csv.DictReader(io.StringIO(text))}


async def trusted_editor(settings: Settings, make_client: MakeClient) -> Editor:
    return await editor_on(
        settings.with_overrides(trust_event_metadata=True), make_client, Clock(1_800_000_000)
    )


async def test_csv_cells_that_would_start_a_formula_are_neutralised(
    settings: Settings, make_client: MakeClient
) -> None:
    editor = await trusted_editor(settings, make_client)
    for n, title in enumerate(FORMULAS):
        await editor.post(view(f"csv/{n}", title=title, author="-5"))
    await flush(editor.client)

    response = await editor.client.get(
        "/api/v1/reports/popular",
        params={"period": "24h", "format": "csv"},
        headers=editor.headers,
    )
    text = await response.text()
    titles = csv_titles(text)

    assert titles == {f"csv/{n}": "'" + title for n, title in enumerate(FORMULAS)}
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["author"] for row in rows} == {"'-5"}
    assert {row["views"] for row in rows} == {"1"}  # numbers stay numbers


@pytest.mark.slow
async def test_the_report_command_neither_runs_formulas_nor_reads_markup(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(trust_event_metadata=True))
    for article_id, title in (
        ("cli/f", FORMULA),
        ("cli/m", "[/oops] closed nothing"),
        ("cli/l", "[link=https://evil.example]click[/link]"),
    ):
        assert (await client.post("/api/v1/events", json=view(article_id, title=title))).status
    await flush(client)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracker", "report", "popular", "--period", "all", *args],
            env={**process_env(settings), "COLUMNS": "200", "FORCE_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    table = await asyncio.to_thread(command)
    as_csv = await asyncio.to_thread(command, "--csv")

    assert table.returncode == 0, table.stderr
    assert "[/oops] closed nothing" in table.stdout
    assert "[link=https://evil.example]click[/link]" in table.stdout
    assert "\x1b]8;" not in table.stdout  # no terminal hyperlink
    assert as_csv.returncode == 0, as_csv.stderr
    assert csv_titles(as_csv.stdout)["cli/f"] == "'" + FORMULA


def test_a_cell_starting_with_a_tab_or_return_is_neutralised_too() -> None:
    # (Metadata reaches no cell so: it is trimmed on the way in.)
    assert [csv_cell(v) for v in ("\tx", "\rx", "x=1", 5, -5, None)] == [
        "'\tx", "'\rx", "x=1", 5, -5, "",
    ]  # fmt: skip


@pytest.mark.parametrize("digits", ["\u00b2", "\u0663", "\uff11", "1\u00b2"])
async def test_the_pixel_answers_its_gif_whatever_its_numbers(client: Client, digits: str) -> None:
    for key in ("e", "d", "pd", "n"):
        response = await client.get(
            "/p.gif", params={"a": "px-digits", "t": "engage", "e": "5", key: digits}
        )
        assert response.status == 200
        assert response.content_type == "image/gif"
    assert sample(client, "tracker_pixel_errors_total", reason="invalid") == 4


def test_an_ipv6_address_counts_by_its_64_for_the_limits() -> None:
    salt = b"s" * 32

    def id_of(peer: str) -> bytes:
        return address_id(salt, client_of(peer, None, ()).limited)

    same = {id_of(f"2001:db8:7:9::{n:x}") for n in range(1, 200)}
    assert len(same) == 1
    assert id_of("2001:db8:7:a::1") not in same
    assert id_of("192.0.2.1") != id_of("192.0.2.2")
    assert id_of("::ffff:192.0.2.1") == id_of("192.0.2.1")


def test_ingest_reads_an_address_and_its_limited_form_in_one_parse_to_the_same_ids() -> None:
    """Ingest takes the client's address and its /64 from one parse (client_of); the ids
    are the ones the version before made from the address's text, so a rolling upgrade
    keeps each address's bound for the day."""
    import hashlib
    import ipaddress
    import socket

    def before(address: str) -> bytes:  # the version before, spelled out
        digest = hashlib.blake2b(digest_size=12, key=salt[:64], person=b"address")
        try:
            parsed = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return digest.update(address.encode()) or digest.digest()
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
            parsed = parsed.ipv4_mapped
        if parsed.version == 4:
            limited = str(parsed)
        else:
            limited = socket.inet_ntop(socket.AF_INET6, parsed.packed[:8] + bytes(8)) + "/64"
        return digest.update(limited.encode()) or digest.digest()

    salt = b"t" * 32
    proxy = [ipaddress.ip_network("127.0.0.1/32")]
    for sent in ("192.0.2.7", "2001:db8:7:9::5", "::ffff:192.0.2.7", "[2001:db8::1]:443",
                 "198.51.100.9:8080", "not an address"):  # fmt: skip
        client = client_of("127.0.0.1", sent, proxy)
        assert client.address == client_address("127.0.0.1", sent, proxy)
        assert address_id(salt, client.limited) == before(client.address), sent
    unix_socket = client_of(None, None, proxy)
    assert unix_socket == ("", "")


async def test_addresses_of_one_ipv6_64_share_the_readers_bound(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(
            dedup_window_s=1800,
            max_readers_per_address=2,
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        )
    )
    for n in range(1, 9):
        response = await client.post(
            "/api/v1/events",
            json=view("v6"),
            headers={
                "X-Forwarded-For": f"2001:db8:7:9::{n:x}",
                "User-Agent": BROWSER_UA.replace("Chrome/131", f"Chrome/{100 + n}"),
            },
        )
        assert response.status == 202
    assert (await stats(client, "v6"))["views"] == 2
    assert sample(client, "tracker_events_ignored_total", reason="address_limit") == 6
