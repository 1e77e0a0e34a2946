"""PostgreSQL's side of article metadata: each source's values written apart, and what
`articles` shows recomputed from them in the same transaction (metadata.py says who
outranks whom). Takes and gives plain values; knows nothing of Redis or HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from tracker.core.errors import InvalidInput
from tracker.core.metadata import (
    COLUMNS,
    FIELDS,
    ArticleMeta,
    Source,
    as_dict,
    cleaned,
    column_values,
    stored_url,
)
from tracker.pg import metadata_queries as mq
from tracker.pg.db import Pool, database_unavailable_on_error

if TYPE_CHECKING:
    from tracker.pg.db import Conn


async def write(
    conn: Conn, metas: Mapping[str, ArticleMeta], source: Source, *, replace: bool = False
) -> None:
    """Within the caller's transaction: each article's values from `source` (a claim only
    where nobody has said anything yet; `replace`: the source's earlier values go, else
    its empty fields keep them), then what `articles` shows for those articles."""
    if not metas:
        return
    ids = sorted(metas)
    ordered = [metas[article_id] for article_id in ids]
    statements = {Source.CLAIM: mq.CLAIM}
    statement = statements.get(source, mq.REPLACE if replace else mq.MERGE)
    rows = await conn.fetch(statement, ids, int(source), *column_values(ordered))
    changed = [row["article_id"] for row in rows]
    if not changed:
        return
    if source is not Source.CLAIM:
        await conn.execute(mq.DROP_CLAIMS, changed)
    await conn.execute(mq.SHOWN, changed)


@dataclass(frozen=True, slots=True)
class Described:
    """An article's metadata as shown, whether it is verified, every source's values, and
    how reading its page last went."""

    article_id: str
    shown: ArticleMeta
    verified: bool
    sources: dict[Source, ArticleMeta]
    page_url: str | None
    page_checked_at: datetime | None
    page_outcome: str | None

    def as_json(self) -> dict[str, Any]:
        checked_at = self.page_checked_at
        return {
            "article_id": self.article_id,
            **as_dict(self.shown),
            "verified": self.verified,
            "sources": {
                source.name.lower(): as_dict(meta) for source, meta in self.sources.items()
            },
            "page": {
                "url": self.page_url,
                "checked_at": checked_at.isoformat().replace("+00:00", "Z") if checked_at else None,
                "outcome": self.page_outcome,
            },
        }


def checked(meta: ArticleMeta) -> ArticleMeta:
    """An editor's metadata, cleaned as events' is; a URL tracker would not keep is
    refused, not dropped (an editor means it)."""
    if meta.url is not None and meta.url.strip() and not stored_url(meta.url):
        raise InvalidInput("url", "expected an absolute http(s) URL")
    return cleaned(meta)


def meta_of(row: asyncpg.Record) -> ArticleMeta:
    return ArticleMeta(
        **{name: row[column] for name, column in zip(FIELDS, COLUMNS, strict=True) if row[column]}
    )


class MetadataStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def set(
        self, article_id: str, meta: ArticleMeta, source: Source, *, replace: bool
    ) -> Described:
        """One article's values from `source` (an editor's or its page's), its row made if
        it had none; returns what it now shows."""
        with database_unavailable_on_error():
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(mq.ADD_ARTICLES, [article_id])
                await write(conn, {article_id: meta}, source, replace=replace)
            described = await self.describe(article_id)
        assert described is not None  # its row was made above
        return described

    async def describe(self, article_id: str) -> Described | None:
        """None for an article tracker has no row of."""
        with database_unavailable_on_error():
            async with self.pool.acquire() as conn:
                shown = await conn.fetchrow(mq.SHOWN_OF, article_id)
                if shown is None:
                    return None
                sources = await conn.fetch(mq.SOURCES_OF, article_id)
        return Described(
            article_id=article_id,
            shown=meta_of(shown),
            verified=shown["verified"],
            sources={Source(row["source"]): meta_of(row) for row in sources},
            page_url=shown["page_url"],
            page_checked_at=shown["page_checked_at"],
            page_outcome=shown["page_outcome"],
        )
