"""The deployment files, checked by parsing them (no Docker, systemd or Prometheus here).

Dockerfile, docker-compose.yml, deploy/tracker.service, deploy/tracker.env.example and
deploy/prometheus-alerts.yml: the structure they need, and that what they name (settings,
metrics, labels) exists in tracker's code.
"""

from __future__ import annotations

import configparser
import itertools
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tracker.metrics import Metrics
from tracker.settings import ENV_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
UNIT = ROOT / "deploy" / "tracker.service"
ENV_EXAMPLE = ROOT / "deploy" / "tracker.env.example"
ALERTS = ROOT / "deploy" / "prometheus-alerts.yml"

# The stop sequence (tracker/cli.py, tracker/app.py) waits up to TRACKER_SHUTDOWN_TIMEOUT
# four times: for requests, for the flusher, for the final flush, for the pool to close.
SHUTDOWN_WAITS = 4


def duration_s(value: object) -> float:
    """A systemd / compose / Prometheus duration ("60s", "1m30s", "90") in seconds."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", text)
    assert parts, f"not a duration: {value!r}"
    assert "".join(n + u for n, u in parts) == text.replace(" ", ""), f"bad duration {value!r}"
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in parts)


def min_stop_time_s() -> float:
    return SHUTDOWN_WAITS * Settings().shutdown_timeout_s


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may also stand between continuation lines
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def command_argv(args: str) -> list[str]:
    """CMD/ENTRYPOINT/HEALTHCHECK CMD arguments: exec form (JSON) or shell form."""
    if args.startswith("["):
        argv = json.loads(args)
        assert isinstance(argv, list)
        assert all(isinstance(a, str) for a in argv)
        return argv
    return shlex.split(args)


def env_assignments(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if len(tokens) >= 2 and "=" not in tokens[0]:  # legacy `ENV KEY value`
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_dockerfile_builds_from_python_slim(dockerfile: list[tuple[str, str]]) -> None:
    keyword, args = dockerfile[0]
    assert keyword == "FROM"
    assert args.split()[0].startswith("python:3.11-slim")


def test_dockerfile_installs_the_package(dockerfile: list[tuple[str, str]]) -> None:
    copied = " ".join(args for keyword, args in dockerfile if keyword in ("COPY", "ADD"))
    # What `pip install .` reads: the project file, its readme, the package.
    for needed in ("pyproject.toml", "README.md", "tracker"):
        assert re.search(rf"(^|\s|/){re.escape(needed)}(\s|/|$)", copied), needed
    runs = [args for keyword, args in dockerfile if keyword == "RUN"]
    assert any(re.search(r"\bpip install\b[^&;|]*\s\.(\s|$)", run) for run in runs), runs


def test_dockerfile_runs_tracker_serve_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    keywords = [keyword for keyword, _ in dockerfile]
    users = [(i, args) for i, (keyword, args) in enumerate(dockerfile) if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    last_user_index, last_user = users[-1]
    assert last_user.split(":")[0] not in ("root", "0"), last_user
    commands = [
        (i, command_argv(args))
        for i, (keyword, args) in enumerate(dockerfile)
        if keyword in ("CMD", "ENTRYPOINT")
    ]
    assert commands, "neither CMD nor ENTRYPOINT"
    assert all(i > last_user_index for i, _ in commands), "USER must come before CMD"
    argv = [a for _, part in commands for a in part]
    assert any(
        a.rsplit("/", 1)[-1] == "tracker" and argv[i + 1 : i + 2] == ["serve"]
        for i, a in enumerate(argv)
    ), argv
    assert "STOPSIGNAL" not in keywords or dict(dockerfile)["STOPSIGNAL"] == "SIGTERM"


def test_dockerfile_listens_on_all_addresses_port_8080(
    dockerfile: list[tuple[str, str]],
) -> None:
    env: dict[str, str] = {}
    for keyword, args in dockerfile:
        if keyword == "ENV":
            env.update(env_assignments(args))
    assert env["TRACKER_HOST"] == "0.0.0.0"
    assert env.get("TRACKER_PORT", str(Settings().port)) == "8080"
    exposed = [
        port.split("/")[0]
        for keyword, args in dockerfile
        if keyword == "EXPOSE"
        for port in args.split()
    ]
    assert "8080" in exposed
    # The image's environment is valid settings.
    Settings.from_env({name: value for name, value in env.items() if name.startswith("TRACKER_")})


def test_dockerfile_healthcheck_uses_python_on_healthz(
    dockerfile: list[tuple[str, str]],
) -> None:
    checks = [args for keyword, args in dockerfile if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert command, "HEALTHCHECK without CMD (or NONE)"
    argv = command_argv(command.strip())
    assert argv[0] in ("python", "python3") or argv[0].endswith(("/python", "/python3"))
    script = " ".join(argv)
    assert "/healthz" in script
    assert "127.0.0.1" in script or "localhost" in script
    # Neither curl nor wget is in python:*-slim.
    assert "curl" not in script
    assert "wget" not in script
    for option in re.findall(r"--(\w[\w-]*)=(\S+)", options):
        if option[0] in ("interval", "timeout", "start-period"):
            duration_s(option[1])


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "tracker-data"} <= ignored


# --- docker-compose.yml -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, in either the mapping or the list form, as strings."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    for name, value in env.items():
        # YAML would turn an unquoted `yes`, `8080` or `on` into a bool or a number.
        assert isinstance(value, str), f"{name}: quote {value!r}"
    return dict(env)


def tokens(command: object) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list)
    for token in command:
        assert isinstance(token, str), f"quote {token!r}: YAML made it a {type(token).__name__}"
    return command


def healthcheck_command(service: dict[str, Any]) -> str:
    check = service.get("healthcheck")
    assert isinstance(check, dict), "no healthcheck"
    assert not check.get("disable", False)
    test = check["test"]
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), test
        return " ".join(test[1:])
    assert isinstance(test, str)
    return test


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a host path)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            found[target] = source
    return found


def test_compose_has_the_services(compose: dict[str, Any]) -> None:
    assert {"tracker", "redis", "postgres"} <= set(compose["services"])


def test_compose_tracker_builds_here_and_publishes_8080(compose: dict[str, Any]) -> None:
    tracker = compose["services"]["tracker"]
    build = tracker["build"]
    assert build == "." or (isinstance(build, dict) and build.get("context") == ".")
    ports = tracker["ports"]
    published = [
        p if isinstance(p, str) else f"{p.get('published')}:{p.get('target')}" for p in ports
    ]
    assert "8080:8080" in published
    assert duration_s(tracker["stop_grace_period"]) >= min_stop_time_s()


def test_compose_tracker_environment_points_at_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = environment(services["tracker"])
    assert env["TRACKER_REDIS_URL"] == "redis://redis:6379/0"
    assert env["TRACKER_DATABASE_URL"] == "postgresql://tracker:tracker@postgres:5432/tracker"
    assert env["TRACKER_HOST"] == "0.0.0.0"
    settings = Settings.from_env(env)  # valid settings
    assert settings.port == 8080

    redis_url = urlsplit(env["TRACKER_REDIS_URL"])
    assert redis_url.hostname in services
    database_url = urlsplit(env["TRACKER_DATABASE_URL"])
    assert database_url.hostname in services
    postgres_env = environment(services["postgres"])
    assert database_url.username == postgres_env["POSTGRES_USER"]
    assert database_url.password == postgres_env["POSTGRES_PASSWORD"]
    assert database_url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_compose_tracker_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    depends_on = compose["services"]["tracker"]["depends_on"]
    assert isinstance(depends_on, dict), "the long form, to say condition: service_healthy"
    for name in ("redis", "postgres"):
        assert depends_on[name]["condition"] == "service_healthy"
        healthcheck_command(compose["services"][name])  # a condition needs a healthcheck


def test_compose_redis_is_durable_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = tokens(redis["command"])
    pairs = set(itertools.pairwise(command))
    assert ("--appendonly", "yes") in pairs
    assert ("--appendfsync", "everysec") in pairs
    assert ("--maxmemory-policy", "noeviction") in pairs
    assert "/data" in mounts(redis)
    check = healthcheck_command(redis)
    assert "redis-cli" in check
    assert "ping" in check


def test_compose_postgres_has_data_volume_and_healthcheck(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(environment(postgres))
    assert "/var/lib/postgresql/data" in mounts(postgres)
    assert "pg_isready" in healthcheck_command(postgres)


def test_compose_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source!r} is not declared"


# --- deploy/tracker.service -----------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_tracker_serve_with_the_env_file(unit: configparser.ConfigParser) -> None:
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    assert service["EnvironmentFile"].lstrip("-") == "/etc/tracker/tracker.env"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].startswith("/"), "systemd wants an absolute ExecStart"
    assert argv[0].rsplit("/", 1)[-1] == "tracker"
    assert argv[1] == "serve"
    assert service.get("User", "root") not in ("root", "0")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_restarts_and_stops_gracefully(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # Long enough for the final flush: systemd sends SIGKILL when it runs out.
    assert duration_s(service["TimeoutStopSec"]) >= min_stop_time_s()


# --- deploy/tracker.env.example -----------------------------------------------------


def read_env_file(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not NAME=value: {raw!r}"
        assert name == name.strip(), f"{path.name}:{number}: space before '='"
        assert value == value.strip(), f"{path.name}:{number}: space after '='"
        assert not value.startswith(("'", '"')), f"{path.name}:{number}: systemd keeps no quotes"
        pairs.append((name, value))
    return pairs


def test_env_example_lists_every_setting_once() -> None:
    names = [name for name, _ in read_env_file(ENV_EXAMPLE)]
    assert len(names) == len(set(names)), "a setting is listed twice"
    assert set(names) == set(ENV_NAMES.values())


def test_env_example_values_are_the_defaults() -> None:
    env = dict(read_env_file(ENV_EXAMPLE))
    assert Settings.from_env(env) == Settings()


# --- deploy/prometheus-alerts.yml ---------------------------------------------------

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
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exposed_metrics() -> dict[str, set[str]]:
    """Every series name tracker's Metrics exposes, with the label names each carries.

    From the registry, so labelled metrics without a child yet count too; prometheus-client
    exposes a counter `x` as `x_total` (and `x_created`), a histogram as `_bucket` etc.
    """
    metrics = Metrics()
    labels = {
        next(iter(metric.describe())).name: set(metric._labelnames)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    exposed: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            exposed[family.name + suffix] = labels.get(family.name, set()) | extra
    return exposed


def promql_selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for each series selector in a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    # Grouping label lists: `by (a, b)`, `on(...)`, `group_left(...)`.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    selectors = []
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = match.groups()
        if call or name.lower() in PROMQL_KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))
        selectors.append((name, labels))
    return selectors


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    groups = data["groups"]
    assert groups
    rules = []
    for group in groups:
        assert group["name"]
        assert group["rules"]
        rules.extend(group["rules"])
    return rules


def test_promql_selector_parser() -> None:
    expr = (
        'sum by (instance) (rate(tracker_x_total{status=~"5..", route!="a{b}"}[5m])) '
        "/ on(instance) max(tracker_y) > 0.05 and absent(tracker_z) or vector(1e3)"
    )
    assert promql_selectors(expr) == [
        ("tracker_x_total", {"status", "route"}),
        ("tracker_y", set()),
        ("tracker_z", set()),
    ]


def test_alert_rules_are_well_formed(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        duration_s(rule.get("for", "0s"))
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def test_alert_expressions_use_only_tracker_metrics(alert_rules: list[dict[str, Any]]) -> None:
    exposed = exposed_metrics()
    used = set()
    for rule in alert_rules:
        selectors = promql_selectors(rule["expr"])
        assert selectors, f"{rule['alert']}: no metric in {rule['expr']!r}"
        for name, labels in selectors:
            assert name in exposed, f"{rule['alert']}: {name} is not a metric tracker exposes"
            assert labels <= exposed[name], f"{rule['alert']}: {name} has no label {labels}"
            used.add(name)
    # What the rules are for: counting stalls, flushes failing, a dependency down.
    assert {
        "tracker_oldest_unflushed_event_age_seconds",
        "tracker_flush_failures_total",
        "tracker_dependency_up",
    } <= used


# --- deploy/nginx.conf and deploy/Caddyfile --------------------------------------------


def directive(text: str, name: str) -> str:
    found = re.findall(rf"^\s*{name}\s+([^;{{\n]+)", text, re.M)
    assert found, f"{name} is missing"
    return str(found[0]).strip().rstrip(";")


def test_nginx_example_matches_trackers_limits() -> None:
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    defaults = Settings()
    for name in ("client_header_timeout", "client_body_timeout"):
        assert directive(text, name) == f"{defaults.read_timeout_s:g}s"
    assert directive(text, "keepalive_timeout") == f"{defaults.keepalive_timeout_s:g}s"
    assert directive(text, "client_max_body_size") == f"{defaults.max_body_bytes // 1024}k"
    assert directive(text, "large_client_header_buffers").endswith("64k")
    assert directive(text, "proxy_request_buffering") == "on"
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text
    assert "limit_req_status 429" in text
    # The public most-read list is served from nginx's cache, stale while it refreshes.
    popular = text.split("location = /api/v1/popular {", 1)[1].split("}", 1)[0]
    assert "proxy_cache tracker_public;" in popular
    assert "proxy_cache_lock on;" in popular


def test_caddy_example_matches_trackers_limits() -> None:
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    defaults = Settings()
    assert directive(text, "read_header") == f"{defaults.read_timeout_s:g}s"
    assert directive(text, "read_body") == f"{defaults.read_timeout_s:g}s"
    assert directive(text, "idle") == f"{defaults.keepalive_timeout_s:g}s"
    assert directive(text, "max_size") == f"{defaults.max_body_bytes // 1024}KB"
    assert directive(text, "reverse_proxy").startswith("127.0.0.1:8080")
