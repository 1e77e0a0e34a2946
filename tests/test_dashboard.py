"""The Grafana dashboard and its provisioning, checked without Grafana or a network.

deploy/grafana/dashboards/tracker.json: well-formed panels, PromQL that promtool parses,
and only metrics, labels and label values tracker exports. deploy/grafana/provisioning:
the datasource and the file provider that loads the dashboard.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.helpers import metric_label_names, require_tool
from tracker.core.errors import Ignored, Rejected
from tracker.core.settings import Settings
from tracker.events.models import CHANNELS
from tracker.ops.metrics import EVENT_TYPES, PIXEL_ERRORS, Metrics
from tracker.web import views
from tracker.web.app_keys import METRICS, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tracker.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "tracker.yml"
COMPOSE = ROOT / "docker-compose.yml"
# Where Grafana's container sees the dashboards and its provisioning (docker-compose mounts).
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
PROVISIONING_MOUNT = "/etc/grafana/provisioning"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables as promtool should see them: any window, any instance.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__range": "1h", "instance": ".*"}
# Units the panels may use: Grafana's ids (rates, seconds, counts, ratios 0-1).
UNITS = {"cps", "ops", "reqps", "s", "short", "percentunit"}
PANEL_TYPES = {"timeseries", "stat"}
GRID_WIDTH = 24
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
REPORT_ROUTE_PREFIXES = ("/api/v1/reports/", "/api/v1/popular")
PROMTOOL_TIMEOUT_S = 60

# Bounded label values tracker creates, so a typo in a matcher shows up here.
LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    ("tracker_events_rejected_total", "reason"): {r.value for r in Rejected},
    ("tracker_events_ignored_total", "reason"): {i.value for i in Ignored},
    ("tracker_pixel_errors_total", "reason"): {r.value for r in PIXEL_ERRORS},
    ("tracker_events_accepted_total", "type"): set(EVENT_TYPES),
    ("tracker_shares_accepted_total", "channel"): set(CHANNELS),
    ("tracker_flush_failures_total", "reason"): {"redis", "postgres", "error"},
    ("tracker_flush_batches_total", "outcome"): {"applied", "already_applied"},
    ("tracker_redis_round_trips_total", "outcome"): {"ok", "error"},
    ("tracker_dependency_up", "dependency"): {"redis", "postgres"},
}

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*\x00(\d+)\x00")
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# Series as prometheus-client exposes them; `_created` is left out: multiprocess mode
# (several workers) does not expose it.
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}

Selector = tuple[str, list[tuple[str, str, str]]]  # metric, [(label, operator, value)]


# --- helpers -------------------------------------------------------------------------


def promql_string(literal: str) -> str:
    """The value of a PromQL string literal (the escapes these expressions need)."""
    if literal.startswith("`"):
        return literal[1:-1]
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def selectors(expr: str) -> list[Selector]:
    """Each series selector in a PromQL expression: its metric and its label matchers."""
    strings: list[str] = []

    def hide(match: re.Match[str]) -> str:
        # Strings out of the way first: a route template holds braces, a regex brackets.
        strings.append(promql_string(match.group()))
        return f"\x00{len(strings) - 1}\x00"

    text = _STRING.sub(hide, expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery windows
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found: list[Selector] = []
    for match in re.finditer(r"(?<![\w:.\x00])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = match.groups()
        if call or name.lower() in PROMQL_KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        found.append(
            (
                name,
                [
                    (label, op, strings[int(index)])
                    for label, op, index in _MATCHER.findall(matchers or "")
                ],
            )
        )
    return found


def for_promtool(expr: str) -> str:
    """The expression with Grafana's variables replaced by values promtool accepts."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        # `${1}` is label_replace's reference to a regex group, not Grafana's.
        return match.group() if name.isdigit() else GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def exposed_series() -> dict[str, set[str]]:
    """Every series tracker exposes, with the label names it carries once scraped.

    From the registry, so labelled metrics without a child yet count too; a counter `x`
    is exposed as `x_total`, a histogram `x` as `x_bucket`, `x_sum`, `x_count`.
    """
    metrics = Metrics()
    labels = metric_label_names(metrics)
    series = {"up": set(TARGET_LABELS)}
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels.get(family.name, set()) | extra | TARGET_LABELS
    return series


def route_templates() -> list[str]:
    """The route templates tracker labels requests with (tracker_middleware)."""
    app = web.Application()
    app[SETTINGS] = Settings()
    app[METRICS] = Metrics()
    views.add_routes(app)
    return [resource.canonical for resource in app.router.resources()]


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard) if panel["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every query: panels' targets."""
    return [
        (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
        for panel in graph_panels(dashboard)
        for target in panel["targets"]
    ]


def panels_under(dashboard: dict[str, Any], row_title: str) -> list[dict[str, Any]]:
    """The panels of a row: nested when it is collapsed, else those up to the next row."""
    panels: list[dict[str, Any]] = []
    inside = False
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            if inside:
                break
            inside = panel["title"] == row_title
            panels.extend(panel.get("panels", []) if inside else [])
        elif inside:
            panels.append(panel)
    return panels


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


@pytest.fixture(scope="module")
def series() -> dict[str, set[str]]:
    return exposed_series()


# --- the helpers themselves ------------------------------------------------------------


def test_selector_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(tracker_x_bucket{route=~"/a/[{]id[}]'
        '|/b", instance=~"$instance"}[5m]))) / on(instance) max(tracker_y) > 1e3 '
        'and label_replace(up{job="t\\"q"}, "c", "${1}", "job", "(.)")'
    )
    assert selectors(expr) == [
        (
            "tracker_x_bucket",
            [("route", "=~", "/a/[{]id[}]|/b"), ("instance", "=~", "$instance")],
        ),
        ("tracker_y", []),
        ("up", [("job", "=", 't"q')]),
    ]


def test_grafana_variables_are_replaced() -> None:
    expr = 'sum(rate(x{instance=~"$instance"}[$__rate_interval])) + label_replace(y, "a", "${1}")'
    assert for_promtool(expr) == 'sum(rate(x{instance=~".*"}[5m])) + label_replace(y, "a", "${1}")'


# --- the dashboard -------------------------------------------------------------------


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "tracker"
    assert dashboard["title"] == "tracker"
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36  # datasource refs as {type, uid} objects
    # Provisioned: Grafana assigns its own id.
    assert dashboard.get("id") is None


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"] == DATASOURCE_REF
    query = instance["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query == "label_values(tracker_build_info, instance)"
    assert instance["includeAll"] is True
    # `.*` rather than a list of the instances seen when the variable was refreshed: an
    # instance started since still shows under All.
    assert instance["allValue"] == ".*"


def test_panels_are_complete(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    panels = graph_panels(dashboard)
    assert panels
    for panel in panels:
        where = f"panel {panel['id']}"
        assert panel["title"].strip(), where
        assert panel["type"] in PANEL_TYPES, where
        assert panel["datasource"] == DATASOURCE_REF, where
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, where
        targets = panel["targets"]
        assert targets, f"{where}: no query"
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{where}: refIds repeat"
        for target in targets:
            assert target["expr"].strip(), where
            assert target.get("datasource", DATASOURCE_REF) == DATASOURCE_REF, where


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:  # top level: nested panels lay out when expanded
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert min(w, h) > 0, panel["id"]
        assert min(x, y) >= 0, panel["id"]
        assert x + w <= GRID_WIDTH, f"panel {panel['id']} is wider than the grid"
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in taken, f"panels {taken[cell]} and {panel['id']} overlap"
            taken[cell] = panel["id"]


def test_expressions_use_only_known_variables(dashboard: dict[str, Any]) -> None:
    for where, expr in expressions(dashboard):
        for match in _VARIABLE.finditer(expr):
            name = match.group(1) or match.group(2)
            assert name.isdigit() or name in GRAFANA_VARIABLES, f"{where}: ${name}"


def test_expressions_filter_by_instance(dashboard: dict[str, Any]) -> None:
    # The instance picker applies to every panel, and to every selector in it.
    for where, expr in expressions(dashboard):
        for name, matchers in selectors(expr):
            assert ("instance", "=~", "$instance") in matchers, f"{where}: {name}"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool's answer (Debian's prometheus package; .ci/run installs it)."""
    return subprocess.run(
        [require_tool("promtool", "prometheus"), *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def test_expressions_parse_with_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    # A group per panel: promtool names the group of an expression it cannot parse.
    groups = [
        {
            "name": f"panel {panel['id']}: {panel['title']}",
            "rules": [
                {
                    "record": f"dashboard:panel_{panel['id']}:{target['refId']}",
                    "expr": for_promtool(target["expr"]),
                }
                for target in panel["targets"]
            ],
        }
        for panel in graph_panels(dashboard)
    ]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = promtool("check", "rules", str(rules))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every expression was read: a rules file promtool took for empty would pass too.
    count = sum(len(group["rules"]) for group in groups)
    assert f"SUCCESS: {count} rules found" in output, output


def test_expressions_use_only_tracker_metrics(
    dashboard: dict[str, Any], series: dict[str, set[str]]
) -> None:
    for where, expr in expressions(dashboard):
        found = selectors(expr)
        assert found, f"{where}: no metric in {expr!r}"
        for name, matchers in found:
            assert name in series, f"{where}: {name} is not a series tracker exposes"
            labels = {label for label, _, _ in matchers}
            assert labels <= series[name], f"{where}: {name} has no label {labels - series[name]}"


def test_template_variables_use_tracker_metrics(
    dashboard: dict[str, Any], series: dict[str, set[str]]
) -> None:
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query", "")
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        if match is None:
            continue
        metric, label = match.groups()
        assert metric in series, f"${variable['name']}: {metric}"
        assert label in series[metric], f"${variable['name']}: {metric} has no {label}"


def test_matchers_use_label_values_tracker_creates(dashboard: dict[str, Any]) -> None:
    for where, expr in expressions(dashboard):
        for name, matchers in selectors(expr):
            for label, op, value in matchers:
                known = LABEL_VALUES.get((name, label))
                if known is None:
                    continue
                if op in ("=", "!="):
                    assert value in known, f"{where}: {name}{{{label}={value!r}}}"
                    continue
                # A plain alternation names values: each must exist. Any other regex must
                # match one at least.
                if re.fullmatch(r"\w+(\|\w+)*", value):
                    unknown = set(value.split("|")) - known
                    assert not unknown, f"{where}: {name}{{{label}}}: no {sorted(unknown)}"
                else:
                    assert any(re.fullmatch(value, v) for v in known), f"{where}: {value!r}"


def test_route_matchers_match_tracker_routes(dashboard: dict[str, Any]) -> None:
    # Prometheus anchors label regexes, as fullmatch does; these need nothing beyond
    # what Python's re and RE2 share.
    routes = route_templates()
    for where, expr in expressions(dashboard):
        for _, matchers in selectors(expr):
            for label, op, value in matchers:
                if label == "route" and op in ("=", "=~"):
                    pattern = value if op == "=~" else re.escape(value)
                    assert any(re.fullmatch(pattern, r) for r in routes), f"{where}: {value!r}"


def test_report_panels_select_the_report_routes(dashboard: dict[str, Any]) -> None:
    routes = route_templates()
    expected = {
        route
        for route in routes
        if route.startswith(REPORT_ROUTE_PREFIXES) or route.endswith("/timeseries")
    }
    assert "/api/v1/articles/{article_id}/timeseries" in expected
    panels = panels_under(dashboard, "Reports")
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            for _, matchers in selectors(target["expr"]):
                patterns = [value for label, op, value in matchers if label == "route"]
                assert len(patterns) == 1, f"panel {panel['id']}: no route matcher"
                selected = {route for route in routes if re.fullmatch(patterns[0], route)}
                assert selected == expected, f"panel {panel['id']} {target['refId']}"


def test_dashboard_shows_every_metric(dashboard: dict[str, Any]) -> None:
    # A metric added to tracker/ops/metrics.py gets a panel too.
    used = {name for _, expr in expressions(dashboard) for name, _ in selectors(expr)}
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query", "")
        query = query["query"] if isinstance(query, dict) else query
        used.update(name for name, _ in selectors(query))
    missing = {
        family.name
        for family in Metrics().registry.collect()
        if not {family.name + suffix for suffix in _SUFFIXES[family.type]} & used
    }
    assert not missing, f"no panel shows {sorted(missing)}"


# --- provisioning --------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    data = yaml.safe_load(DATASOURCES.read_text())
    assert data["apiVersion"] == 1
    (datasource,) = data["datasources"]
    assert datasource["name"] == "Prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True


def test_dashboard_provisioning() -> None:
    data = yaml.safe_load(PROVIDERS.read_text())
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    # The provider loads every .json in the mounted directory: this one is there.
    assert DASHBOARD.parent == GRAFANA / "dashboards"


def compose_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a compose service's bind mounts, short or long syntax."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target.rstrip("/")] = source.rstrip("/")
    return mounts


def test_compose_mounts_the_grafana_files() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    if "grafana" not in services:
        pytest.skip("docker-compose.yml has no grafana service yet")
    mounts = compose_mounts(services["grafana"])
    for target, directory in (
        (DASHBOARDS_MOUNT, GRAFANA / "dashboards"),
        (PROVISIONING_MOUNT, GRAFANA / "provisioning"),
    ):
        assert target in mounts, f"grafana does not mount {target}"
        assert (COMPOSE.parent / mounts[target]).resolve() == directory, target


def test_shards_without_a_flusher_counts_shards_not_processes(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """The lease panel: 0 (green) when flushers hold every shard between them, however many
    flushers and shards; the shards of a dead flusher show as a red figure. (Before: it
    summed shards held, so a healthy 12-shard cluster showed 12 in orange.)"""
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == "Shards without a flusher"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 1}]
    expr = for_promtool(panel["targets"][0]["expr"])

    def case(name: str, held: dict[str, str], expected: int) -> dict[str, Any]:
        series = [
            {"series": f'tracker_redis_shards{{instance="{i}"}}', "values": "12x5"}
            for i in ("api-1", "api-2", *held)
        ] + [
            {"series": f'tracker_flush_lease_held{{instance="{i}"}}', "values": values}
            for i, values in held.items()
        ]
        return {
            "name": name,
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                {"expr": expr, "eval_time": "4m", "exp_samples": [{"value": expected}]}
            ],
        }

    tests = {
        "evaluation_interval": "1m",
        "tests": [
            case("one flusher holds all 12", {"flusher-1": "12x5"}, 0),
            case("two flushers share them", {"flusher-1": "6x5", "flusher-2": "6x5"}, 0),
            case("one of two is gone", {"flusher-1": "6x5", "flusher-2": "6 6 6 0 0 0"}, 6),
            case("no flusher at all", {}, 12),
        ],
    }
    path = tmp_path / "lease-panel-test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
