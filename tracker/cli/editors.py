"""The editors' commands: `tracker report popular|trending|takeoff`, `tracker import`,
`tracker token create|list|revoke`. Each opens only what it needs."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec

from tracker.cli.support import fail, load_settings, run_guarded, run_on_database, setup
from tracker.core.periods import PERIODS, period_of
from tracker.core.settings import Settings
from tracker.ops.embedded import database_server, servers
from tracker.pg import importer
from tracker.pg.auth import Tokens
from tracker.pg.db import Pool
from tracker.pg.pools import postgres_pool
from tracker.redis_side.client import opened_redis
from tracker.redis_side.keys import Keys
from tracker.redis_side.pending import PendingReader
from tracker.redis_side.trending import KINDS, WINDOWS, Trending, kind_of, window_of
from tracker.reports.metric import metric_of
from tracker.reports.popular import Reports
from tracker.reports.rows import PopularQuery, Report, TakeoffQuery, TrendingReport
from tracker.web.report_views import CSV_FIELDS, TAKEOFF_WINDOWS, csv_rows

TABLE_COLUMNS = (
    "rank",
    "article_id",
    "title",
    "category",
    "value",
    "views",
    "uniques",
    "shares_total",
)


def _output_options(command: Any) -> Any:
    command = click.option("--csv", "as_csv", is_flag=True, help="CSV, as the API gives it.")(
        command
    )
    return click.option("--json", "as_json", is_flag=True, help="JSON, as the API gives it.")(
        command
    )


def _period_options(command: Any) -> Any:
    command = click.option("--period", type=click.Choice(PERIODS), help="Ending now.")(command)
    command = click.option("--from", "start", help="ISO 8601 (instead of --period).")(command)
    return click.option("--to", "end", help="ISO 8601; default now.")(command)


def _filter_options(command: Any) -> Any:
    for name in ("category", "lang", "author"):
        command = click.option(f"--{name}", help=f"Only articles of this {name}.")(command)
    return command


def _show(report: Report | TrendingReport, as_csv: bool, as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        writer.writerows(csv_rows(report.rows))
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=_title(report))
        for column in TABLE_COLUMNS:
            table.add_column(
                column,
                justify="right" if column not in ("article_id", "title", "category") else "left",
            )
        for row in report.rows:
            values = msgspec.structs.asdict(row)
            # Text cells: what the data holds is never read as Rich markup.
            table.add_row(
                *(Text("" if values.get(c) is None else str(values.get(c))) for c in TABLE_COLUMNS)
            )
        Console().print(table)


def _title(report: Report | TrendingReport) -> str:
    if isinstance(report, TrendingReport):
        return f"trending: {report.metric}, last {report.window}"
    return f"{report.metric}, {report.start} to {report.end}"


async def _reports(settings: Settings, ask: Any) -> Report | TrendingReport:
    async with (
        servers(settings) as (redis_url, database_url),
        opened_redis(settings, redis_url) as redis,
        postgres_pool(settings, database_url, migrate=True) as pool,
    ):
        keys = Keys.of(settings)
        reports = Reports(
            PendingReader(redis, keys),
            pool,
            time.time,
            read_through_min_readers=settings.read_through_min_readers,
        )
        result: Report | TrendingReport = await ask(reports, Trending(redis, keys, time.time))
        return result


def _run_report(ask: Any, as_csv: bool, as_json: bool) -> None:
    settings = load_settings()
    setup(settings)

    async def main_() -> None:
        _show(await _reports(settings, ask), as_csv, as_json)

    run_guarded(main_)


@click.group()
def report() -> None:
    """What is popular, trending, or took off: the API's reports as a table, CSV or JSON."""


@report.command()
@_period_options
@click.option(
    "--metric",
    default="views",
    show_default=True,
    help="views, uniques, shares[:CHANNEL], referrals[:CHANNEL].",
)
@_filter_options
@click.option(
    "--group-by", type=click.Choice(("article", "group")), default="article", show_default=True
)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@_output_options
def popular(
    period: str | None,
    start: str | None,
    end: str | None,
    metric: str,
    category: str | None,
    lang: str | None,
    author: str | None,
    group_by: str,
    limit: int,
    as_csv: bool,
    as_json: bool,
) -> None:
    """The top articles of a period by a metric."""

    async def ask(reports: Reports, trending: Trending) -> Report:
        query = PopularQuery(
            period=period_of(period, start, end, time.time()),
            metric=metric_of(metric),
            category=category,
            lang=lang,
            author=author,
            by_group=group_by == "group",
            limit=limit,
        )
        return await reports.popular(query)

    _run_report(ask, as_csv, as_json)


@report.command()
@click.option("--window", type=click.Choice(tuple(WINDOWS)), default="15m", show_default=True)
@click.option("--metric", type=click.Choice(tuple(KINDS)), default="views", show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@_output_options
def trending(window: str, metric: str, limit: int, as_csv: bool, as_json: bool) -> None:
    """What is taking off right now, against the window before."""

    async def ask(reports: Reports, trending: Trending) -> TrendingReport:
        return await reports.trending(trending, kind_of(metric), window_of(window), limit)

    _run_report(ask, as_csv, as_json)


@report.command()
@_period_options
@click.option(
    "--window", type=click.Choice(tuple(TAKEOFF_WINDOWS)), default="24h", show_default=True
)
@_filter_options
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@_output_options
def takeoff(
    period: str | None,
    start: str | None,
    end: str | None,
    window: str,
    category: str | None,
    lang: str | None,
    author: str | None,
    limit: int,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Articles published in a period, ranked by views in their first hour, day or week."""

    async def ask(reports: Reports, trending: Trending) -> Report:
        query = TakeoffQuery(
            published=period_of(period, start, end, time.time(), default="7d"),
            window_hours=TAKEOFF_WINDOWS[window],
            category=category,
            lang=lang,
            author=author,
            limit=limit,
        )
        return await reports.takeoff(query)

    _run_report(ask, as_csv, as_json)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_file(file: Path) -> None:
    """Counts from a previous counter: article_id,views[,shares_CHANNEL...][,title,url,
    category,lang,author,published,group]. Importing the same file again changes nothing."""
    settings = load_settings()
    setup(settings)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        with file.open("rb") as handle:  # counted as bytes: the check reads the text
            lines = sum(1 for _ in handle) - 1
        checking = progress.add_task("checking", total=max(lines, 1))
        try:
            parsed = importer.parse(file, lambda n: progress.advance(checking, n))
        except importer.BadImport as exc:
            fail(f"{file}: {exc}; nothing imported")
        writing = progress.add_task("importing", total=max(len(parsed.counts), 1))

        async def main_() -> None:
            async with (
                database_server(settings) as database_url,
                postgres_pool(settings, database_url, migrate=True) as pool,
            ):
                done = await importer.write(pool, parsed, lambda n: progress.advance(writing, n))
            click.echo(
                f"imported {done.articles} article(s), {done.counts} count(s); "
                f"{done.changed} changed since the last import"
            )

        run_guarded(main_)


@click.group()
def token() -> None:
    """Access tokens for the reports (/reports, /api/v1/reports/...)."""


def _run_tokens(work: Any) -> None:
    async def on(pool: Pool) -> None:
        await work(Tokens(pool))

    run_on_database(on)


@token.command()
@click.option("--name", required=True, help="Who or what it is for (shown by `token list`).")
def create(name: str) -> None:
    """Print a new token. Only its hash is kept: this is the one time it is shown."""

    async def work(tokens: Tokens) -> None:
        click.echo(await tokens.create(name))

    _run_tokens(work)


@token.command("list")
def list_tokens() -> None:
    """The tokens: id, name, created, last used, revoked."""

    async def work(tokens: Tokens) -> None:
        for info in await tokens.list():
            revoked = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
            used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
            created = f"{info.created_at:%Y-%m-%d %H:%M}"
            click.echo(f"{info.id}\t{info.name}\tcreated {created}\tused {used}\t{revoked}")

    _run_tokens(work)


@token.command()
@click.argument("which")
def revoke(which: str) -> None:
    """Revoke a token, by id or by name."""

    async def work(tokens: Tokens) -> None:
        revoked = await tokens.revoke(which)
        if not revoked:
            fail(f"no active token with id or name {which!r}")
        click.echo(f"revoked {revoked} token(s)")

    _run_tokens(work)
