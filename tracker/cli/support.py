"""What every command shares: settings from the environment (a bad one, or the embedded
default without its packages, exits 2 naming it), logging, and one way to run and to fail."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

import click

from tracker.core.errors import DatabaseUnavailable, RedisUnavailable
from tracker.core.settings import Settings, SettingsError, unknown_names
from tracker.ops.embedded import EmbeddedError, EmbeddedNotInstalled, require_packages
from tracker.pg.db import Pool
from tracker.redis_side.preflight import StartupRefused
from tracker.web.server import run


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus command-line overrides; exit 2 naming the culprit.

    With no URLs (the embedded default) the embedded servers' packages must be installed:
    checked here, before anything starts, so that a bare `pip install .` (the Docker image)
    asked for the default stops with one line saying what to do."""
    try:
        settings = Settings.from_env()
        changes = {name: value for name, value in overrides.items() if value is not None}
        settings = settings.with_overrides(**changes) if changes else settings
    except SettingsError as exc:
        click.echo(f"tracker: invalid setting: {exc}", err=True)
        sys.exit(2)
    if settings.embedded:
        try:
            require_packages()
        except EmbeddedNotInstalled as exc:
            not_installed(exc)
    return settings


def not_installed(exc: EmbeddedNotInstalled) -> NoReturn:
    """The embedded default without its packages: a setup error, exit 2 like a bad setting."""
    click.echo(f"tracker: {exc}", err=True)
    sys.exit(2)


def setup(settings: Settings) -> None:
    """Logging as the settings say, then a warning for each TRACKER_* variable that is no
    setting (in the log's own format, JSON included)."""
    from tracker.ops.logs import configure_logging

    configure_logging(settings)
    for message in unknown_names(os.environ):
        logging.getLogger("tracker").warning(message, extra={"event": "unknown_setting"})


def fail(message: str) -> NoReturn:
    click.echo(f"tracker: {message}", err=True)
    sys.exit(1)


def run_on_database(work: Callable[[Pool], Awaitable[None]]) -> None:
    """A command's work on a pool of the configured (or embedded) PostgreSQL, the schema
    brought up to date first."""
    from tracker.ops.embedded import database_server
    from tracker.pg.pools import postgres_pool

    settings = load_settings()
    setup(settings)

    async def main_() -> None:
        async with (
            database_server(settings) as database_url,
            postgres_pool(settings, database_url, migrate=True) as pool,
        ):
            await work(pool)

    run_guarded(main_)


def run_guarded(main_: Callable[[], Awaitable[None]]) -> None:
    try:
        run(main_)
    except EmbeddedNotInstalled as exc:
        not_installed(exc)
    except EmbeddedError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot connect or listen: {exc}")
    except DatabaseUnavailable as exc:
        fail(f"PostgreSQL unavailable: {exc}")
    except RedisUnavailable as exc:
        fail(f"Redis unavailable: {exc}")
    except StartupRefused as exc:
        fail(str(exc))
