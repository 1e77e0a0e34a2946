"""`tracker import FILE.csv`: counts from a previous counter (the site's pages already
show "Views: 554"), as totals that no hour had: part of per-article stats and all-time
reports, kept apart as imported. The same file twice changes nothing (an import sets the
imported counts, it does not add to them), and a bad line stops the whole import."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from . import queries as q
from .counts import SHARE, VIEW
from .db import Pool, database_unavailable_on_error
from .models import ARTICLE_ID_RE, ARTICLE_ID_RULE, CHANNELS

METADATA_COLUMNS: Final = ("title", "url", "category", "lang", "author", "published", "group")
COUNT_COLUMNS: Final = {"views": VIEW, **{f"shares_{c}": f"{SHARE}:{c}" for c in CHANNELS}}
MAX_TEXT: Final = {"title": 512, "url": 2048, "category": 128, "lang": 35, "author": 256}


class BadImport(ValueError):
    """A file tracker will not import; the message names the line and the column."""


@dataclass(slots=True)
class Parsed:
    counts: list[tuple[str, str, int]] = field(default_factory=list)
    # article_id -> column -> value (non-empty only)
    metadata: dict[str, dict[str, str | datetime]] = field(default_factory=dict)
    articles: int = 0


def parse(path: Path, progress: Callable[[int], None] = lambda _: None) -> Parsed:
    """Every line checked before anything is written."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        _check_columns(columns)
        parsed = Parsed()
        seen: set[str] = set()
        for number, line in enumerate(reader, start=2):
            article_id = (line.get("article_id") or "").strip()
            if not ARTICLE_ID_RE.fullmatch(article_id):
                raise BadImport(f"line {number}: article_id: {ARTICLE_ID_RULE}")
            if article_id in seen:
                raise BadImport(f"line {number}: article_id: {article_id} is listed twice")
            seen.add(article_id)
            for column, metric in COUNT_COLUMNS.items():
                raw = (line.get(column) or "").strip()
                if column in columns and raw:
                    parsed.counts.append((article_id, metric, _count(raw, number, column)))
            metadata = _metadata(line, number)
            if metadata:
                parsed.metadata[article_id] = metadata
            parsed.articles += 1
            progress(1)
    if not parsed.articles:
        raise BadImport("the file has no lines after its header")
    return parsed


def _check_columns(columns: Sequence[str]) -> None:
    if "article_id" not in columns or "views" not in columns:
        raise BadImport("line 1: the header needs article_id and views")
    known = {"article_id", *COUNT_COLUMNS, *METADATA_COLUMNS}
    for column in columns:
        if column not in known:
            raise BadImport(f"line 1: unknown column {column!r}")


def _count(raw: str, number: int, column: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value < 2**62:
        raise BadImport(f"line {number}: {column}: expected a whole number, got {raw!r}")
    return value


def _metadata(line: dict[str, str | None], number: int) -> dict[str, str | datetime]:
    found: dict[str, str | datetime] = {}
    for column in METADATA_COLUMNS:
        value = (line.get(column) or "").strip()
        if not value:
            continue
        if "\x00" in value or len(value) > MAX_TEXT.get(column, 128):
            raise BadImport(f"line {number}: {column}: too long, or holds a NUL")
        if column == "published":
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise BadImport(f"line {number}: published: expected ISO 8601") from None
            found[column] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        elif column == "group" and not ARTICLE_ID_RE.fullmatch(value):
            raise BadImport(f"line {number}: group: {ARTICLE_ID_RULE}")
        else:
            found[column] = value
    return found


@dataclass(frozen=True, slots=True)
class Imported:
    articles: int
    counts: int
    changed: int  # counts whose value differs from the previous import


async def write(
    pool: Pool, parsed: Parsed, progress: Callable[[int], None] = lambda _: None
) -> Imported:
    """All of it in one transaction: nothing half-imported."""
    ids = sorted(parsed.metadata)
    columns = [[_text(parsed.metadata[a].get(c)) for a in ids] for c in METADATA_COLUMNS[:5]]
    with database_unavailable_on_error():
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(q.CREATE_IMPORTING)
            await conn.copy_records_to_table(q.IMPORTING_TABLE, records=parsed.counts)
            progress(len(parsed.counts) // 2)
            changed = await conn.fetchval(q.APPLY_IMPORT)
            await conn.execute(q.IMPORT_ARTICLES, sorted({a for a, _, _ in parsed.counts}))
            await conn.execute(
                q.IMPORT_METADATA,
                ids,
                *columns,
                [_text(parsed.metadata[a].get("group")) for a in ids],
            )
            await conn.execute(
                q.IMPORT_PUBLISHED, ids, [parsed.metadata[a].get("published") for a in ids]
            )
            progress(len(parsed.counts) - len(parsed.counts) // 2)
    return Imported(parsed.articles, len(parsed.counts), int(changed or 0))


def _text(value: str | datetime | None) -> str | None:
    return value if isinstance(value, str) else None
