"""deploy/nginx.conf as an operator runs it: Debian's nginx passes `nginx -t` on it, and
readers who reach tracker through it keep their own addresses.

The compose stack's topology, on loopback: readers connect to nginx from addresses of
their own (127.0.0.2, 127.0.0.3, ...), nginx connects to tracker from one address (the
compose network's gateway there, 127.0.0.1 here) and passes each reader's address on in
X-Forwarded-For. tracker trusts that one address (docker-compose.yml trusts its pinned
network, tests/test_deploy_files.py checks that it holds the gateway): each reader counts.
Without the trust, every reader is the proxy: one view for thirty readers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import BROWSER_UA, Client, MakeClient, flush, require_tool, stats, view
from tracker.core.settings import Settings
from tracker.ops.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
READERS = 30
START_TIMEOUT_S = 10.0


def replaced(text: str, old: str, new: str) -> str:
    """Each substitution must find its text: the test follows the example as it stands."""
    assert old in text, f"deploy/nginx.conf no longer has {old!r}"
    return text.replace(old, new)


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=tracker.example.org", "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def nginx_config(directory: Path, *, listen_port: int, tracker_port: int) -> Path:
    """deploy/nginx.conf in an http {} of its own, with only what ties it to a real host
    replaced: certificate paths, the listen address, tracker's port, file locations."""
    cert, key = self_signed(directory)
    proxy_conf = directory / "tracker_proxy.conf"
    shutil.copy(DEPLOY / "tracker_proxy.conf", proxy_conf)
    text = (DEPLOY / "nginx.conf").read_text()
    text = replaced(text, "/etc/nginx/tracker_proxy.conf", str(proxy_conf))
    text = replaced(text, "/etc/letsencrypt/live/tracker.example.org/fullchain.pem", str(cert))
    text = replaced(text, "/etc/letsencrypt/live/tracker.example.org/privkey.pem", str(key))
    text = replaced(text, "/var/cache/nginx/tracker", str(directory / "cache"))
    text = replaced(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{tracker_port};")
    text = replaced(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{listen_port} ssl http2;")
    # IPv6 may be off on a test machine.
    text = re.sub(r"\n\s*listen \[::\]:443[^\n]*", "", text)
    site = directory / "tracker.conf"
    site.write_text(text)
    main = directory / "nginx.conf"
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main.write_text(
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    access_log off;\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {site};\n"
        "}\n"
    )
    return main


def nginx(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("nginx", "nginx-light"), "-p", str(config.parent), "-c", str(config), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@asynccontextmanager
async def running_nginx(config: Path, port: int) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        require_tool("nginx", "nginx-light"), "-p", str(config.parent), "-c", str(config),
        "-g", "daemon off;",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert process.returncode is None, "nginx exited"
                assert asyncio.get_running_loop().time() < deadline, "nginx did not listen"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield
    finally:
        process.terminate()
        await process.wait()


async def read_through(port: int, reader_address: str, article_id: str) -> int:
    """One reader's page view, sent from its own address to nginx (TLS, as readers do)."""
    connector = aiohttp.TCPConnector(local_addr=(reader_address, 0), ssl=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.post(
            f"https://127.0.0.1:{port}/api/v1/events",
            json=view(article_id),
            headers={"User-Agent": BROWSER_UA, "Host": "tracker.example.org"},
        )
        return response.status


def test_debians_nginx_accepts_the_example(tmp_path: Path) -> None:
    require_tool("nginx", "nginx-light")
    config = nginx_config(tmp_path, listen_port=free_port(), tracker_port=free_port())

    result = nginx(config, "-t")

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.parametrize(("trusted", "counted"), [(True, READERS), (False, 1)])
async def test_readers_behind_the_proxy_keep_their_addresses(
    tmp_path: Path, settings: Settings, make_client: MakeClient, trusted: bool, counted: int
) -> None:
    require_tool("nginx", "nginx-light")
    proxy = (ipaddress.ip_network("127.0.0.1/32"),) if trusted else ()
    # The defaults that bound what one address counts (rate limit, readers per address,
    # the reload window), as the compose stack runs them.
    defaults = Settings()
    client: Client = await make_client(
        settings.with_overrides(
            trusted_proxies=proxy,
            rate_limit_per_min=defaults.rate_limit_per_min,
            dedup_window_s=defaults.dedup_window_s,
            max_readers_per_address=defaults.max_readers_per_address,
        )
    )
    port = free_port()
    assert client.server.port is not None
    config = nginx_config(tmp_path, listen_port=port, tracker_port=client.server.port)

    async with running_nginx(config, port):
        statuses = [
            await read_through(port, f"127.0.0.{n}", "behind/proxy") for n in range(2, 2 + READERS)
        ]

    assert statuses == [202] * READERS
    await flush(client)
    counts = await stats(client, "behind/proxy")
    assert counts["views"] == counted
