"""`tracker serve | flush | migrate | report | import | token`: one entry point, settings
from the environment (the editors' commands are in cli_editors.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TypeVar

import click

from tracker import __version__
from tracker.cli import articles as cli_articles
from tracker.cli import editors as cli_editors
from tracker.cli.support import (
    fail,
    load_settings,
    not_installed,
    run_guarded,
    run_on_database,
    setup,
)
from tracker.cli.workers import serve_workers
from tracker.core.env_values import parse_shards
from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings, SettingsError
from tracker.flush.background import flushing, make_flusher, page_reading
from tracker.flush.flusher import Flusher
from tracker.ops.embedded import EmbeddedError, EmbeddedNotInstalled, servers
from tracker.ops.metrics import Metrics
from tracker.pg import migrations
from tracker.pg.db import Pool
from tracker.pg.pools import postgres_pool, read_pool
from tracker.pg.store import Store
from tracker.redis_side import reshard
from tracker.redis_side.client import RedisClient, RedisNodes, opened_redis
from tracker.redis_side.keys import Keys
from tracker.redis_side.pending import sketch_days
from tracker.redis_side.preflight import Preflight
from tracker.web.server import serve as serve_forever
from tracker.web.server import wait_for_signal

log = logging.getLogger("tracker")
T = TypeVar("T")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracker")
def main() -> None:
    """tracker: view and share counts for article pages.

    Settings come from TRACKER_* environment variables (see README). With
    TRACKER_REDIS_URL and TRACKER_DATABASE_URL unset, tracker runs its own Redis and
    PostgreSQL under TRACKER_DATA_DIR.
    """


@main.command()
@click.option("--host", default=None, help="Address to listen on [TRACKER_HOST].")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on [TRACKER_PORT]."
)
@click.option(
    "--no-flusher",
    is_flag=True,
    help="Do not flush to Postgres in this process (run `tracker flush --loop` elsewhere).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Processes serving the same port (SO_REUSEPORT); one holds the flush lease at a time.",
)
def serve(host: str | None, port: int | None, no_flusher: bool, workers: int) -> None:
    """Serve the HTTP API, with the flusher in-process unless --no-flusher."""
    settings = load_settings(host=host, port=port)
    setup(settings)

    if workers > 1:
        try:
            serve_workers(settings, workers, run_flusher=not no_flusher)
        except EmbeddedNotInstalled as exc:
            not_installed(exc)
        except EmbeddedError as exc:
            fail(str(exc))
        return

    async def main_() -> None:
        await serve_forever(settings, run_flusher=not no_flusher)

    run_guarded(main_)


@main.command()
@click.option("--loop", "loop_", is_flag=True, help="Keep flushing every TRACKER_FLUSH_INTERVAL s.")
@click.option(
    "--drain",
    is_flag=True,
    help="Flush until Redis holds nothing pending, then record TRACKER_REDIS_SHARDS (the way "
    "to change it: stop every `tracker serve` first).",
)
@click.option(
    "--shards",
    metavar="LIST",
    help="The shards this flusher takes, e.g. 0-3,6 (default: TRACKER_FLUSH_SHARDS, or "
    "all); each shard has a lease, so flushers on several hosts share them.",
)
def flush(loop_: bool, drain: bool, shards: str | None) -> None:
    """Move pending counters from Redis to PostgreSQL: once, until stopped (--loop), or
    all of them (--drain)."""
    settings = load_settings()
    if shards is not None:
        try:
            settings = settings.with_overrides(flush_shards=parse_shards(shards))
        except (ValueError, SettingsError) as exc:
            fail(f"--shards {shards}: {exc}")
    setup(settings)
    if loop_ and drain:
        fail("--loop and --drain go separately")

    async def main_() -> None:
        async with (
            servers(settings) as (redis_url, database_url),
            opened_redis(settings, redis_url) as redis,
            postgres_pool(settings, database_url, migrate=True) as pool,
            read_pool(settings, pool) as reads,
        ):
            nodes = RedisNodes(redis, timeout_s=settings.redis_timeout_s)
            try:
                if drain:
                    await _drain(settings, redis, pool, nodes)
                    return
                keys = Keys.of(settings)
                preflight = Preflight(redis, keys, settings)
                await (_when_redis_answers(preflight, settings) if loop_ else preflight.check())
                metrics = Metrics()
                # A looping flusher reads articles' pages too; a single flush does not wait.
                reading = (
                    page_reading(settings, pool, metrics) if loop_ else contextlib.nullcontext()
                )
                async with reading as pages:
                    flusher = make_flusher(
                        settings, redis, pool, metrics, nodes=nodes, read_pool=reads, pages=pages
                    )
                    await _flush(flusher, settings, loop_)
            finally:
                await nodes.aclose()

    run_guarded(main_)


async def _when_redis_answers(preflight: Preflight, settings: Settings) -> None:
    """A looping flusher rides out Redis outages while it runs; it rides out one at its
    start too (a cluster in the middle of a failover) instead of exiting."""
    delay_s = settings.flush_interval_s
    while True:
        try:
            await preflight.check()
            return
        except RedisUnavailable as exc:
            log.warning(
                "Redis unavailable at start, trying again in %.3g s: %s",
                delay_s,
                exc,
                extra={"event": "redis_unavailable"},
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, settings.flush_max_backoff_s)


async def _flush(flusher: Flusher, settings: Settings, loop_: bool) -> None:
    if loop_:
        async with flushing(flusher, settings):
            log.info("flushing every %.3g s until stopped", settings.flush_interval_s)
            await wait_for_signal()
        return
    result = await flusher.flush_once()
    if not result.lease:
        fail("another flusher holds the lease of every shard; nothing done")
    click.echo(
        f"flushed {result.batches} batch(es): {result.events} event(s), "
        f"{result.counters} counter(s); {result.skipped} already applied"
    )


async def _drain(settings: Settings, redis: RedisClient, pool: Pool, nodes: RedisNodes) -> None:
    keys = Keys.of(settings)
    recorded = await reshard.recorded_shards(redis, keys) or settings.redis_shards
    # What waits was written with the recorded count: drain it with that count, every shard.
    flusher = make_flusher(
        settings.with_overrides(redis_shards=recorded, flush_shards=()),
        redis,
        pool,
        Metrics(),
        nodes=nodes,
    )
    result = await flusher.drain()
    if not result.lease:
        fail("another flusher holds the lease: stop every `tracker serve` and flusher first")
    click.echo(
        f"drained {result.batches} batch(es): {result.events} event(s), "
        f"{result.counters} counter(s); {result.skipped} already applied"
    )
    if recorded != settings.redis_shards:
        sketches = await Store(pool).recent_sketches(sketch_days(time.time())[0])
        moved = await reshard.move_sketches(
            redis, Keys(settings.redis_prefix, recorded), keys, sketches
        )
        click.echo(
            f"shards: {recorded} -> {settings.redis_shards}; {moved.sketches} reader "
            "sketch(es) moved"
        )
    await reshard.record_shards(redis, keys)


@main.command()
def migrate() -> None:
    """Bring the Postgres schema up to date (safe to run twice, or from two processes)."""

    async def show(pool: Pool) -> None:
        # run_on_database migrated first (under the advisory lock): say where it stands.
        async with pool.acquire() as conn:
            versions = await migrations.schema_versions(conn)
        for version, name in versions:
            click.echo(f"{version:04d}_{name}")
        click.echo(f"schema up to date ({len(versions)} migration(s))")

    run_on_database(show)


main.add_command(cli_editors.report)
main.add_command(cli_editors.import_file)
main.add_command(cli_editors.token)
main.add_command(cli_articles.article)
