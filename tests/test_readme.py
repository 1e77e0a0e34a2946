"""The README's first screen works for a new user: the serve command on a fresh clone
starts tracker on the embedded default, counts a posted view and keeps it over a restart;
CI runs exactly the README's test command."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.helpers import BROWSER_UA
from tracker.ops.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(?P<command>[^\n]+)\n```", text)
    assert match, f"README has no {marker} block"
    return match.group("command")


def test_readme_commands_are_on_the_first_screen() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert readme_command("serve-command") in first_screen
    assert readme_command("test-command") in first_screen
    assert "tracker serve" in readme_command("serve-command")
    assert "pytest" in readme_command("test-command")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_command("test-command") in ci


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _post(url: str, payload: dict[str, object]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=json.dumps(payload).encode(),
        # As the README's curl example does: urllib's own User-Agent is a bot's.
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.status)


class Service:
    """The README's serve command, run in a shell as a user would, in its own group."""

    def __init__(self, clone: Path, port: int, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        env.pop("VIRTUAL_ENV", None)
        env["TRACKER_PORT"] = str(port)
        env["TRACKER_FLUSH_INTERVAL"] = "0.5"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S602 - the README's shell command
                readme_command("serve-command"),
                shell=True,
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve command exited: {self.log.read_text()[-3000:]}")
            try:
                if _get(self.base + "/readyz")[0] == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        pytest.fail(f"not ready in {timeout_s} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to the group, as a terminal's Ctrl-C or a process manager would send."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert alive == [], f"still running after SIGTERM: {alive}"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_serve_command_on_a_fresh_clone_counts_and_survives_a_restart(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "tracker"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    log = tmp_path / "serve.log"

    first = Service(clone, port, log)
    try:
        first.wait_ready(timeout_s=600)  # includes pip installing from nothing
        assert _post(first.base + "/api/v1/events", {"type": "view", "article_id": "a/1"}) == 202
        status, body = _get(first.base + "/api/v1/articles/a/1/stats")
        assert (status, body["views"]) == (200, 1)
    finally:
        first.stop()

    second = Service(clone, port, log)
    try:
        second.wait_ready(timeout_s=300)
        status, body = _get(second.base + "/api/v1/articles/a/1/stats")
    finally:
        second.stop()

    assert (status, body["views"]) == (200, 1)
    assert log.read_text().count("tracker stopped") == 2
    assert (clone / "tracker-data" / "redis" / "appendonly.aof").exists()
    assert (clone / "tracker-data" / "postgres" / "PG_VERSION").exists()
    leftover = subprocess.run(
        ["pgrep", "-f", str(clone / "tracker-data")], capture_output=True, text=True
    )
    assert leftover.stdout == "", "embedded servers still running after stop"
