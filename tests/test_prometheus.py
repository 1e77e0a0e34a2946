"""What Prometheus itself makes of tracker: `promtool check metrics` on a real scrape, the
alert rules checked and unit-tested by promtool, and a real Prometheus (Debian's package,
installed by .ci/run) scraping a running tracker and answering PromQL about it."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import BROWSER_UA, Client, MakeClient, post_events, require_tool, share, view
from tracker.core.settings import Settings
from tracker.ops.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
SCRAPE_TIMEOUT_S = 30.0


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool", "prometheus"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=PROMETHEUS_DIR,
        timeout=60,
        check=False,
    )


def test_the_prometheus_config_and_rules_pass_promtool() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_every_alert_fires_and_stays_silent_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # Each alert of alerts.yml has a case where it fires and one where it does not.
    tested = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    for name in alert_names():
        firing = f"alertname: {name}\n        exp_alerts:\n          - exp_labels"
        silent = f"alertname: {name}\n        exp_alerts: []"
        assert firing in tested, f"{name} is never shown firing"
        assert silent in tested, f"{name} is never shown silent"


def test_every_alert_links_its_runbook_section() -> None:
    """Each alert links its section of the runbook tracker serves (/runbook), on the
    address Prometheus names in its external label: an absolute link that works from an
    alert's e-mail or chat message."""
    import yaml

    from tracker.web.runbook import anchor, runbook_page

    source = (ROOT / "tracker" / "static" / "runbook.md").read_text()
    page = runbook_page().decode()
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["global"]["external_labels"]["tracker_url"].startswith("http")
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        name = rule["alert"]
        assert f"\n## {name}\n" in source, f"the runbook has no section for {name}"
        assert f'<h2 id="{anchor(name)}">{name}</h2>' in page
        assert rule["annotations"]["runbook_url"] == (
            f"{{{{ $externalLabels.tracker_url }}}}/runbook#{name.lower()}"
        )


async def test_tracker_serves_the_runbook(client: Client) -> None:
    response = await client.get("/runbook")

    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    text = await response.text()
    assert '<h2 id="trackerflushlagging">TrackerFlushLagging</h2>' in text
    assert "<script" not in text


# Gauges that describe Redis as a whole: every instance exports the same figure.
REDIS_WIDE = (
    "tracker_pending_counters",
    "tracker_pending_events",
    "tracker_oldest_unflushed_event_age_seconds",
    "tracker_redis_shards",
)


def test_alerts_on_redis_wide_gauges_count_them_once_whatever_the_instances() -> None:
    """sum() of a Redis-wide gauge doubles it with two instances (TrackerPendingGrowing
    fired at 63.5k counters reported as 127k). Each rule on one takes max() and is tested
    with two and three instances reporting it."""
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    checked = 0
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        gauges = [gauge for gauge in REDIS_WIDE if gauge in rule["expr"]]
        if not gauges:
            continue
        checked += 1
        for gauge in gauges:
            assert not re.search(
                rf"\b(sum|count|avg)\s*(by\s*\([^)]*\)\s*)?\(\s*{gauge}", rule["expr"]
            )
        for instances in (2, 3):
            cases = [
                case
                for case in tests
                if any(test["alertname"] == rule["alert"] for test in case["alert_rule_test"])
                and any(
                    len({s["series"] for s in case["input_series"] if gauge in s["series"]})
                    == instances
                    for gauge in gauges
                )
            ]
            assert cases, f"{rule['alert']} is not tested with {instances} instances"
    assert checked >= 4


def alert_names() -> list[str]:
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"]]


async def test_a_scrape_passes_promtool_check_metrics(client: Client) -> None:
    assert await post_events(client, view("pm/1"), share("pm/1", "telegram")) == 202
    await client.post("/api/v1/events", data=b"{", headers={"User-Agent": BROWSER_UA})
    text = await (await client.get("/metrics")).text()

    result = await asyncio.to_thread(promtool, "check", "metrics", stdin=text)

    # promtool prints its lint findings (naming, units, help) and exits 1 on any.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def value_of(base: str, promql: str) -> float | None:
    found = query(base, promql)
    return float(found[0]["value"][1]) if found else None


@pytest.mark.slow
async def test_a_real_prometheus_scrapes_tracker_and_answers_promql(
    settings: Settings, make_client: MakeClient, tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus", "prometheus")
    client = await make_client(settings, run_flusher=True)
    target = f"127.0.0.1:{client.port}"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        f"  - job_name: tracker\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert await post_events(client, view("pm/a"), view("pm/b"), share("pm/a", "vk")) == 202
        assert await post_events(client, view("pm/c")) == 202

        expected = {
            'sum(tracker_events_accepted_total{type="view"})': 3.0,
            'sum(tracker_events_accepted_total{type="share"})': 1.0,
            'sum(tracker_shares_accepted_total{channel="vk"})': 1.0,
            'up{job="tracker"}': 1.0,
            'tracker_dependency_up{dependency="postgres"}': 1.0,
        }
        found = await eventually(lambda: {q: value_of(base, q) for q in expected}, expected)
        assert found == expected
        # The rules load and evaluate against tracker's series without error.
        rules = await asyncio.to_thread(rules_of, base)
        assert {r["name"] for r in rules} == set(alert_names())
        assert {r["health"] for r in rules} == {"ok"}, [r for r in rules if r["health"] != "ok"]
    finally:
        prometheus.terminate()
        await asyncio.to_thread(prometheus.wait, 10)
        log.close()


def rules_of(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5) as response:  # noqa: S310
        body = json.load(response)
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


async def eventually(ask: Any, expected: dict[str, float]) -> dict[str, float | None]:
    """Asks until Prometheus has scraped what was expected, or SCRAPE_TIMEOUT_S passed."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        try:
            found: dict[str, float | None] = await asyncio.to_thread(ask)
        except OSError:  # Prometheus still starting
            found = {}
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)
