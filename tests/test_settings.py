"""Settings from the TRACKER_* environment, and the command line that reads them."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from tracker.cli.main import main
from tracker.core.env_values import env_value
from tracker.core.settings import ENV_NAMES, FIELDS, Settings, SettingsError

REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/tracker"


def names(variable: str) -> re.Pattern[str]:
    """Matches the variable's name on its own (TRACKER_PORT, not TRACKER_PORTS)."""
    return re.compile(rf"(?<![A-Z_]){re.escape(variable)}(?![A-Z_])")


def clean_environ(**variables: str) -> dict[str, str]:
    """This process's environment without any TRACKER_* setting, plus `variables`."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_NAMES.values()}
    env.update(variables)
    return env


# --- Settings.from_env --------------------------------------------------------------


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.redis_url is None
    assert settings.database_url is None
    assert settings.embedded
    assert settings.data_dir == Path("tracker-data")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.flush_interval_s == 5.0
    assert settings.dedup_window_s == 1800
    assert settings.allowed_origins == ()
    assert settings.trusted_proxies == ()
    assert settings.respect_dnt is False
    assert settings.demo is False
    assert settings.redis_shards == 1
    assert settings.hourly_retention_days == 90
    assert settings.max_body_bytes == 256 * 1024
    assert settings.max_batch_events == 100
    assert (settings.log_level, settings.log_format) == ("INFO", "text")


def test_variable_names_are_prefixed_field_names_without_unit_suffix() -> None:
    assert ENV_NAMES["flush_interval_s"] == "TRACKER_FLUSH_INTERVAL"
    assert ENV_NAMES["dedup_window_s"] == "TRACKER_DEDUP_WINDOW"
    assert ENV_NAMES["redis_shards"] == "TRACKER_REDIS_SHARDS"
    assert ENV_NAMES["max_body_bytes"] == "TRACKER_MAX_BODY_BYTES"
    assert set(ENV_NAMES) == {f.name for f in msgspec.structs.fields(Settings)}
    assert len(set(ENV_NAMES.values())) == len(ENV_NAMES), "two settings share a variable"


def test_unrelated_and_blank_variables_leave_defaults() -> None:
    environ = {"PORT": "1", "TRACKER_PORT": "  ", "TRACKER_LOG_LEVEL": "", "HOST": "x"}

    assert Settings.from_env(environ) == Settings()


def test_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ENV_NAMES.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TRACKER_PORT", "9123")

    assert Settings.from_env().port == 9123


# (variable, raw value, field, parsed value): one row per setting at least.
VALID_VALUES: list[tuple[str, str, str, Any]] = [
    ("TRACKER_DATA_DIR", "/var/lib/tracker", "data_dir", Path("/var/lib/tracker")),
    ("TRACKER_HOST", "0.0.0.0", "host", "0.0.0.0"),
    ("TRACKER_PORT", "9000", "port", 9000),
    ("TRACKER_PORT", " 9000 ", "port", 9000),
    ("TRACKER_PORT", "0", "port", 0),
    ("TRACKER_FLUSH_INTERVAL", "2.5", "flush_interval_s", 2.5),
    ("TRACKER_FLUSH_INTERVAL", "1", "flush_interval_s", 1.0),
    ("TRACKER_SKETCH_STORE_INTERVAL", "60", "sketch_store_interval_s", 60.0),
    ("TRACKER_FLUSH_MAX_PENDING_EVENTS", "1000", "flush_max_pending_events", 1000),
    ("TRACKER_FLUSH_MAX_BACKOFF", "120", "flush_max_backoff_s", 120.0),
    ("TRACKER_FLUSH_LEASE", "10", "flush_lease_s", 10.0),
    ("TRACKER_DEDUP_WINDOW", "60", "dedup_window_s", 60),
    ("TRACKER_DEDUP_WINDOW", "0", "dedup_window_s", 0),
    (
        "TRACKER_ALLOWED_ORIGINS",
        "https://news.example, http://localhost:3000/,,",
        "allowed_origins",
        ("https://news.example", "http://localhost:3000"),
    ),
    ("TRACKER_ALLOWED_ORIGINS", "*", "allowed_origins", ("*",)),
    (
        "TRACKER_TRUSTED_PROXIES",
        "10.0.0.0/8, 192.168.1.7,::1, 2001:db8::/32",
        "trusted_proxies",
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("192.168.1.7/32"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("2001:db8::/32"),
        ),
    ),
    # Host bits set: the network it lies in, not an error.
    (
        "TRACKER_TRUSTED_PROXIES",
        "10.1.2.3/8",
        "trusted_proxies",
        (ipaddress.ip_network("10.0.0.0/8"),),
    ),
    ("TRACKER_RESPECT_DNT", "1", "respect_dnt", True),
    ("TRACKER_RESPECT_DNT", "TRUE", "respect_dnt", True),
    ("TRACKER_RESPECT_DNT", "yes", "respect_dnt", True),
    ("TRACKER_RESPECT_DNT", "on", "respect_dnt", True),
    ("TRACKER_RESPECT_DNT", "0", "respect_dnt", False),
    ("TRACKER_RESPECT_DNT", "False", "respect_dnt", False),
    ("TRACKER_RESPECT_DNT", "no", "respect_dnt", False),
    ("TRACKER_RESPECT_DNT", "off", "respect_dnt", False),
    ("TRACKER_DEMO", "true", "demo", True),
    (
        "TRACKER_SITE_ORIGINS",
        "https://news.example, https://www.news.example/",
        "site_origins",
        ("https://news.example", "https://www.news.example"),
    ),
    ("TRACKER_TRUST_EVENT_METADATA", "1", "trust_event_metadata", True),
    ("TRACKER_METADATA_REFRESH", "3600", "metadata_refresh_s", 3600.0),
    ("TRACKER_REDIS_SHARDS", "16", "redis_shards", 16),
    ("TRACKER_REDIS_SHARDS", "1024", "redis_shards", 1024),
    ("TRACKER_REDIS_PREFIX", "news-site.v2", "redis_prefix", "news-site.v2"),
    ("TRACKER_REDIS_TIMEOUT", "0.5", "redis_timeout_s", 0.5),
    ("TRACKER_DATABASE_TIMEOUT", "30", "database_timeout_s", 30.0),
    ("TRACKER_DATABASE_POOL_SIZE", "4", "database_pool_size", 4),
    ("TRACKER_DATABASE_PARALLEL_WORKERS", "2", "database_parallel_workers", 2),
    ("TRACKER_MAX_BODY_BYTES", "65536", "max_body_bytes", 65536),
    ("TRACKER_MAX_BATCH_EVENTS", "50", "max_batch_events", 50),
    ("TRACKER_MAX_BATCH_EVENTS", "100", "max_batch_events", 100),
    ("TRACKER_FLUSH_MAX_BATCH_FIELDS", "20000", "flush_max_batch_fields", 20_000),
    ("TRACKER_FLUSH_POOL_SIZE", "2", "flush_pool_size", 2),
    ("TRACKER_MAX_READERS_PER_ADDRESS", "0", "max_readers_per_address", 0),
    ("TRACKER_MAX_READERS_PER_ADDRESS", "25", "max_readers_per_address", 25),
    ("TRACKER_RATE_LIMIT", "600", "rate_limit_per_min", 600.0),
    ("TRACKER_RATE_LIMIT", "600/min", "rate_limit_per_min", 600.0),
    ("TRACKER_RATE_LIMIT", "10/s", "rate_limit_per_min", 600.0),
    ("TRACKER_RATE_LIMIT", "90/h", "rate_limit_per_min", 1.5),
    ("TRACKER_RATE_LIMIT", "0", "rate_limit_per_min", 0.0),
    ("TRACKER_REQUIRE_ORIGIN", "1", "require_origin", True),
    ("TRACKER_ALLOW_EVICTION", "yes", "allow_eviction", True),
    ("TRACKER_READ_TIMEOUT", "2.5", "read_timeout_s", 2.5),
    ("TRACKER_KEEPALIVE_TIMEOUT", "30", "keepalive_timeout_s", 30.0),
    ("TRACKER_REQUEST_TIMEOUT", "3", "request_timeout_s", 3.0),
    ("TRACKER_MAX_LOOP_LAG", "0.25", "max_loop_lag_s", 0.25),
    ("TRACKER_STATS_CACHE_BYTES", "16777216", "stats_cache_bytes", 16 << 20),
    ("TRACKER_UA_CACHE_BYTES", "1048576", "ua_cache_bytes", 1 << 20),
    ("TRACKER_STATS_MAX_AGE", "0", "stats_max_age_s", 0),
    ("TRACKER_STATS_CACHE", "0.25", "stats_cache_s", 0.25),
    ("TRACKER_FLUSH_PARALLELISM", "4", "flush_parallelism", 4),
    ("TRACKER_RETRY_AFTER", "5", "retry_after_s", 5),
    ("TRACKER_SHUTDOWN_TIMEOUT", "0", "shutdown_timeout_s", 0.0),
    ("TRACKER_HOURLY_RETENTION_DAYS", "90", "hourly_retention_days", 90),
    ("TRACKER_READ_THROUGH_MIN_READERS", "5", "read_through_min_readers", 5),
    ("TRACKER_APPLIED_BATCH_RETENTION_DAYS", "7", "applied_batch_retention_days", 7),
    ("TRACKER_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("TRACKER_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ("TRACKER_LOG_LEVEL", "ERROR", "log_level", "ERROR"),
    ("TRACKER_LOG_FORMAT", "json", "log_format", "json"),
    ("TRACKER_LOG_FORMAT", "JSON", "log_format", "json"),
    ("TRACKER_LOG_FORMAT", "text", "log_format", "text"),
    ("TRACKER_PLAUSIBLE_SHARE_EVENTS", "Share", "plausible_share_events", ("Share",)),
    (
        "TRACKER_PLAUSIBLE_SHARE_EVENTS",
        "Share, Share Click,,",
        "plausible_share_events",
        ("Share", "Share Click"),
    ),
    ("TRACKER_ARTICLE_ID_FROM_URL", "^/*+(.*[^/])", "article_id_from_url", "^/*+(.*[^/])"),
    ("TRACKER_FLUSH_SHARDS", "0", "flush_shards", (0,)),
    ("TRACKER_FLUSH_SHARDS", " 0-0, ", "flush_shards", (0,)),
    ("TRACKER_REDIS_WAIT_REPLICAS", "1", "redis_wait_replicas", 1),
    (
        "TRACKER_ARTICLE_ID_FROM_URL",
        r"^/news/(?P<id>\d+)(?:-[a-z-]*)?$",
        "article_id_from_url",
        r"^/news/(?P<id>\d+)(?:-[a-z-]*)?$",
    ),
]


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    VALID_VALUES,
    ids=[f"{row[0]}={row[1]!r}" for row in VALID_VALUES],
)
def test_each_variable_is_parsed_into_its_field(
    variable: str, raw: str, field: str, expected: Any
) -> None:
    settings = Settings.from_env({variable: raw})

    assert getattr(settings, field) == expected
    assert settings == Settings(**{field: expected})  # and nothing else changed


def test_every_setting_has_a_parse_case() -> None:
    # The URLs and the cluster switch need a pair: test_cluster_and_replica_settings.
    covered = {row[2] for row in VALID_VALUES} | {
        "redis_url",
        "database_url",
        "read_database_url",
        "redis_cluster",
    }
    missing = set(ENV_NAMES) - covered
    assert not missing, f"add rows to VALID_VALUES (and INVALID_VALUES) for: {sorted(missing)}"


def test_both_urls_set_means_external_servers() -> None:
    settings = Settings.from_env(
        {"TRACKER_REDIS_URL": REDIS_URL, "TRACKER_DATABASE_URL": DATABASE_URL}
    )

    assert (settings.redis_url, settings.database_url) == (REDIS_URL, DATABASE_URL)
    assert not settings.embedded


INVALID_VALUES: list[tuple[str, str]] = [
    ("TRACKER_PORT", "abc"),
    ("TRACKER_PORT", "-1"),
    ("TRACKER_PORT", "65536"),
    ("TRACKER_PORT", "80.5"),
    ("TRACKER_FLUSH_INTERVAL", "-1"),
    ("TRACKER_SKETCH_STORE_INTERVAL", "0"),
    ("TRACKER_FLUSH_INTERVAL", "0"),
    ("TRACKER_FLUSH_INTERVAL", "soon"),
    ("TRACKER_FLUSH_INTERVAL", "nan"),
    ("TRACKER_FLUSH_INTERVAL", "inf"),
    ("TRACKER_FLUSH_MAX_PENDING_EVENTS", "0"),
    ("TRACKER_FLUSH_MAX_BACKOFF", "0"),
    ("TRACKER_FLUSH_LEASE", "0.5"),
    ("TRACKER_DEDUP_WINDOW", "-1"),
    ("TRACKER_DEDUP_WINDOW", "1.5"),
    ("TRACKER_DEDUP_WINDOW", "30m"),
    ("TRACKER_ALLOWED_ORIGINS", "news.example"),
    ("TRACKER_ALLOWED_ORIGINS", "https://a.example,ftp://b.example"),
    ("TRACKER_TRUSTED_PROXIES", "10.0.0.0/33"),
    ("TRACKER_TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
    ("TRACKER_RESPECT_DNT", "maybe"),
    ("TRACKER_DEMO", "2"),
    ("TRACKER_SITE_ORIGINS", "*"),
    ("TRACKER_SITE_ORIGINS", "news.example"),
    ("TRACKER_TRUST_EVENT_METADATA", "perhaps"),
    ("TRACKER_METADATA_REFRESH", "10"),
    ("TRACKER_REDIS_SHARDS", "0"),
    ("TRACKER_REDIS_SHARDS", "1025"),
    ("TRACKER_REDIS_SHARDS", "two"),
    ("TRACKER_REDIS_PREFIX", "trk:prod"),
    ("TRACKER_REDIS_TIMEOUT", "0"),
    ("TRACKER_DATABASE_TIMEOUT", "-3"),
    ("TRACKER_DATABASE_POOL_SIZE", "0"),
    ("TRACKER_DATABASE_PARALLEL_WORKERS", "-1"),
    ("TRACKER_REDIS_WAIT_REPLICAS", "-1"),
    ("TRACKER_FLUSH_SHARDS", "a-b"),
    ("TRACKER_MAX_BODY_BYTES", "100"),
    ("TRACKER_MAX_BATCH_EVENTS", "0"),
    ("TRACKER_MAX_BATCH_EVENTS", "101"),
    ("TRACKER_FLUSH_MAX_BATCH_FIELDS", "10"),
    ("TRACKER_FLUSH_POOL_SIZE", "0"),
    ("TRACKER_MAX_READERS_PER_ADDRESS", "-1"),
    ("TRACKER_RATE_LIMIT", "fast"),
    ("TRACKER_RATE_LIMIT", "10/week"),
    ("TRACKER_RATE_LIMIT", "-5/min"),
    ("TRACKER_REQUIRE_ORIGIN", "sometimes"),
    ("TRACKER_READ_TIMEOUT", "0"),
    ("TRACKER_KEEPALIVE_TIMEOUT", "-1"),
    ("TRACKER_REQUEST_TIMEOUT", "never"),
    ("TRACKER_MAX_LOOP_LAG", "0"),
    ("TRACKER_STATS_CACHE_BYTES", "1000"),
    ("TRACKER_UA_CACHE_BYTES", "1"),
    ("TRACKER_STATS_MAX_AGE", "-1"),
    ("TRACKER_RETRY_AFTER", "0"),
    ("TRACKER_SHUTDOWN_TIMEOUT", "-1"),
    ("TRACKER_HOURLY_RETENTION_DAYS", "-1"),
    ("TRACKER_READ_THROUGH_MIN_READERS", "0"),
    ("TRACKER_HOURLY_RETENTION_DAYS", "a week"),
    ("TRACKER_APPLIED_BATCH_RETENTION_DAYS", "0"),
    ("TRACKER_LOG_LEVEL", "verbose"),
    ("TRACKER_LOG_FORMAT", "xml"),
    ("TRACKER_PLAUSIBLE_SHARE_EVENTS", ", ,"),
    ("TRACKER_PLAUSIBLE_SHARE_EVENTS", "Share," + "x" * 121),
    ("TRACKER_ARTICLE_ID_FROM_URL", "^/news/(\\d+"),  # not a regular expression
    ("TRACKER_ARTICLE_ID_FROM_URL", "^/news/\\d+"),  # no group
    ("TRACKER_ARTICLE_ID_FROM_URL", "^/(news)/(\\d+)"),  # two groups
]


@pytest.mark.parametrize(
    ("variable", "raw"), INVALID_VALUES, ids=[f"{v}={r!r}" for v, r in INVALID_VALUES]
)
def test_invalid_value_raises_settings_error_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: raw})

    message = str(caught.value)
    assert names(variable).search(message), message
    assert repr(raw) in message, message


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TRACKER_REDIS_URL": REDIS_URL}, "TRACKER_DATABASE_URL"),
        ({"TRACKER_DATABASE_URL": DATABASE_URL}, "TRACKER_REDIS_URL"),
        (
            {"TRACKER_REDIS_URL": "http://127.0.0.1:6379", "TRACKER_DATABASE_URL": DATABASE_URL},
            "TRACKER_REDIS_URL",
        ),
        (
            {"TRACKER_REDIS_URL": REDIS_URL, "TRACKER_DATABASE_URL": "mysql://db/tracker"},
            "TRACKER_DATABASE_URL",
        ),
    ],
    ids=["redis-url-only", "database-url-only", "redis-url-scheme", "database-url-scheme"],
)
def test_unusable_url_pair_raises_settings_error_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)

    assert names(named).search(str(caught.value)), str(caught.value)


def test_cluster_and_replica_settings() -> None:
    seeds = "redis://10.0.0.1:7000,redis://10.0.0.2:7000"
    settings = Settings.from_env(
        {
            "TRACKER_REDIS_URL": seeds,
            "TRACKER_REDIS_CLUSTER": "1",
            "TRACKER_REDIS_SHARDS": "8",
            "TRACKER_FLUSH_SHARDS": "0-3,6",
            "TRACKER_DATABASE_URL": DATABASE_URL,
            "TRACKER_READ_DATABASE_URL": "postgresql://replica/tracker",
        }
    )
    assert settings.redis_cluster
    assert settings.flush_shards == (0, 1, 2, 3, 6)
    assert settings.read_database_url == "postgresql://replica/tracker"
    refused = [
        # Several nodes only for a cluster.
        ({"TRACKER_REDIS_URL": seeds, "TRACKER_DATABASE_URL": DATABASE_URL}, "TRACKER_REDIS_URL"),
        ({"TRACKER_REDIS_CLUSTER": "1"}, "TRACKER_REDIS_CLUSTER"),
        ({"TRACKER_READ_DATABASE_URL": DATABASE_URL}, "TRACKER_READ_DATABASE_URL"),
        (
            {
                "TRACKER_REDIS_URL": REDIS_URL,
                "TRACKER_DATABASE_URL": DATABASE_URL,
                "TRACKER_READ_DATABASE_URL": "mysql://replica",
            },
            "TRACKER_READ_DATABASE_URL",
        ),
        ({"TRACKER_FLUSH_SHARDS": "0-3"}, "TRACKER_FLUSH_SHARDS"),  # one shard by default
        ({"TRACKER_FLUSH_SHARDS": "3-1"}, "TRACKER_FLUSH_SHARDS"),
    ]
    for environ, named in refused:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(environ)
        assert names(named).search(str(caught.value)), (environ, str(caught.value))


def test_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(SettingsError, match="TRACKER_DATABASE_URL"):
        Settings().with_overrides(redis_url=REDIS_URL)


# --- the command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        ([], ["serve", "flush", "migrate", "--help", "--version"]),
        (["serve"], ["--host", "--port", "--no-flusher", "TRACKER_HOST", "TRACKER_PORT"]),
        (["flush"], ["--loop", "TRACKER_FLUSH_INTERVAL"]),
        (["migrate"], ["schema"]),
    ],
    ids=["tracker", "serve", "flush", "migrate"],
)
def test_help_exits_0_and_lists_commands_and_options(args: list[str], listed: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: "), result.stdout
    for word in listed:
        assert word in result.stdout, f"{word!r} missing from:\n{result.stdout}"
    assert result.stderr == ""


def test_short_help_flag_works_like_long() -> None:
    runner = CliRunner()

    assert runner.invoke(main, ["-h"]).stdout == runner.invoke(main, ["--help"]).stdout


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == "tracker, version 0.1.0"


@pytest.mark.parametrize(
    ("command", "variable", "raw"),
    [
        ("serve", "TRACKER_PORT", "abc"),
        ("serve", "TRACKER_FLUSH_INTERVAL", "-1"),
        ("serve", "TRACKER_LOG_FORMAT", "xml"),
        ("serve", "TRACKER_REDIS_URL", REDIS_URL),  # without TRACKER_DATABASE_URL
        ("flush", "TRACKER_DEDUP_WINDOW", "-5"),
        ("migrate", "TRACKER_REDIS_SHARDS", "0"),
        ("serve", "TRACKER_ARTICLE_ID_FROM_URL", "^/news/(\\d+"),
        ("serve", "TRACKER_ARTICLE_ID_FROM_URL", "^/news/\\d+$"),
    ],
)
def test_invalid_setting_exits_2_with_one_line_naming_the_variable(
    tmp_path: Path, command: str, variable: str, raw: str
) -> None:
    env = clean_environ(**{variable: raw, "TRACKER_DATA_DIR": str(tmp_path / "data")})

    done = subprocess.run(
        [sys.executable, "-m", "tracker", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    lines = done.stderr.splitlines()
    assert done.returncode == 2, done
    assert len(lines) == 1, done.stderr
    named = "TRACKER_DATABASE_URL" if variable == "TRACKER_REDIS_URL" else variable
    assert names(named).search(lines[0]), lines[0]
    assert lines[0].startswith("tracker: invalid setting: "), lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "data").exists(), "nothing may start before settings are valid"


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_port_option_out_of_range_exits_2_naming_the_option(port: str) -> None:
    # TRACKER_REDIS_URL alone is itself invalid: should --port ever pass, serve still exits
    # before starting servers, and the assertion on "--port" tells the two apart.
    unset: dict[str, str | None] = dict.fromkeys(ENV_NAMES.values())
    runner = CliRunner(env={**unset, "TRACKER_REDIS_URL": REDIS_URL})

    result = runner.invoke(main, ["serve", "--port", port])

    assert result.exit_code == 2, result.output
    assert "--port" in result.stderr, result.stderr
    assert "TRACKER_" not in result.stderr, result.stderr


def test_unknown_tracker_names_are_named_with_the_closest_setting() -> None:
    """A typo'd setting is ignored, as before, but never silently (before: not a word)."""
    from tracker.core.settings import unknown_names

    environ = {
        "TRACKER_TRUSTED_PROXY": "10.0.0.0/8",
        "TRACKER_FLUSH_INTERVALS": "2",
        "TRACKER_QWERTY": "1",
        "TRACKER_PORT": "8080",
        "TRACKER_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
        "HOME": "/root",
    }

    assert unknown_names(environ) == [
        "TRACKER_FLUSH_INTERVALS is not a tracker setting and is ignored; "
        "did you mean TRACKER_FLUSH_INTERVAL?",
        "TRACKER_QWERTY is not a tracker setting and is ignored",
        "TRACKER_TRUSTED_PROXY is not a tracker setting and is ignored; "
        "did you mean TRACKER_TRUSTED_PROXIES?",
    ]


def test_commands_log_the_unknown_names_in_the_logs_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import logging

    from tracker.cli.support import setup

    monkeypatch.setenv("TRACKER_TRUSTED_PROXY", "10.0.0.0/8")
    logger = logging.getLogger("tracker")
    handlers, level = list(logger.handlers), logger.level
    try:
        setup(Settings(log_format="json"))
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)

    (line,) = [line for line in lines if line.get("event") == "unknown_setting"]
    assert line["level"] == "WARNING"
    assert "did you mean TRACKER_TRUSTED_PROXIES?" in line["message"]


def test_every_setting_is_declared_once_and_reads_back_its_own_default() -> None:
    """Each field's declaration is all there is (type, bounds, parser): its default,
    written as its variable, reads back as itself, and is within its own bounds."""
    defaults = Settings()
    for field in FIELDS:
        default = getattr(defaults, field.name)
        if default not in (None, ()):  # unset: no variable to read
            assert field.parse(env_value(default)) == default, field.env_name


def test_a_bound_is_checked_however_the_value_arrives() -> None:
    """Meta bounds hold for the environment and for with_overrides alike."""
    with pytest.raises(SettingsError, match="TRACKER_MAX_BATCH_EVENTS"):
        Settings.from_env({"TRACKER_MAX_BATCH_EVENTS": "101"})
    with pytest.raises(SettingsError, match="TRACKER_MAX_BATCH_EVENTS=101"):
        Settings().with_overrides(max_batch_events=101)
    with pytest.raises(SettingsError, match="TRACKER_RATE_LIMIT=-1"):
        Settings().with_overrides(rate_limit_per_min=-1)
