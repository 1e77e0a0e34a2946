"""`tracker article set ID --title ... | show ID`: editors describe an article from the
command line, as `PUT /api/v1/articles/{id}` does (an option per metadata field)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click
import msgspec

from tracker.cli.support import fail, run_on_database
from tracker.core.errors import InvalidInput
from tracker.core.metadata import FIELDS, Source, from_dict
from tracker.events.models import validate_article_id
from tracker.pg.db import Pool
from tracker.pg.metadata_store import MetadataStore as Store
from tracker.pg.metadata_store import checked


def _run(work: Callable[[Store], Awaitable[None]]) -> None:
    async def on(pool: Pool) -> None:
        await work(Store(pool))

    run_on_database(on)


@click.group()
def article() -> None:
    """An article's metadata as editors set it (no event or page changes it)."""


def _field_options(command: Any) -> Any:
    for name in reversed(FIELDS):
        hint = "ISO 8601" if name == "published" else "text"
        command = click.option(f"--{name}", help=f"The article's {name} ({hint}).")(command)
    return command


@article.command("set")
@click.argument("article_id")
@_field_options
def set_article(article_id: str, **values: str | None) -> None:
    """Set the given fields; the others keep what editors said before."""
    given = {name: value for name, value in values.items() if value is not None}
    if not given:
        fail(f"name a field to set: {', '.join('--' + name for name in FIELDS)}")
    try:
        validate_article_id(article_id)
        meta = checked(from_dict(given))
    except InvalidInput as exc:
        fail(f"{exc.field}: {exc.message}")
    except msgspec.ValidationError as exc:
        fail(str(exc))

    async def work(store: Store) -> None:
        found = await store.set(article_id, meta, Source.EDITOR, replace=False)
        click.echo(msgspec.json.format(msgspec.json.encode(found.as_json())).decode())

    _run(work)


@article.command("show")
@click.argument("article_id")
def show_article(article_id: str) -> None:
    """What the article shows, and what each source said of it."""

    async def work(store: Store) -> None:
        found = await store.describe(article_id)
        if found is None:
            fail(f"no article {article_id!r}")
        click.echo(msgspec.json.format(msgspec.json.encode(found.as_json())).decode())

    _run(work)
