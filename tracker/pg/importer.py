"""`tracker import FILE.csv`: counts from a previous counter (the site's pages already
show "Views: 554"), as totals that no hour had: part of per-article stats and all-time
reports, kept apart as imported. The same file twice changes nothing (an import sets the
imported counts, it does not add to them), imports run one at a time, and a bad line
stops the whole import naming it. The file's metadata columns are the editors' word
(metadata.py): no event or page changes them."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from tracker.core.metadata import FIELDS, ArticleMeta, Source, from_dict, published_at, stored_url
from tracker.events.counts import SHARE, VIEW
from tracker.events.models import ARTICLE_ID_RE, ARTICLE_ID_RULE, CHANNELS, field_of_error
from tracker.pg import import_queries as iq
from tracker.pg import metadata_queries as mq
from tracker.pg import metadata_store
from tracker.pg.db import Pool, database_unavailable_on_error

# The metadata columns are the metadata fields, under their names.
METADATA_COLUMNS: Final = FIELDS
COUNT_COLUMNS: Final = {"views": VIEW, **{f"shares_{c}": f"{SHARE}:{c}" for c in CHANNELS}}
MAX_COUNT: Final = 2**62
NEWLINE: Final = b"\n"


class BadImport(ValueError):
    """A file tracker will not import; the message names the line and the column."""


@dataclass(slots=True)
class Parsed:
    counts: list[tuple[str, str, int]] = field(default_factory=list)
    # article_id -> what the file says of it (non-empty cells only)
    metadata: dict[str, ArticleMeta] = field(default_factory=dict)
    articles: int = 0


def parse(path: Path, progress: Callable[[int], None] = lambda _: None) -> Parsed:
    """Every line checked before anything is written."""
    parsed = Parsed()
    seen: set[str] = set()
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="strict") as handle:
            for number, line in _lines(handle):
                article_id = (line.get("article_id") or "").strip()
                if not ARTICLE_ID_RE.fullmatch(article_id):
                    raise BadImport(f"line {number}: article_id: {ARTICLE_ID_RULE}")
                if article_id in seen:
                    raise BadImport(f"line {number}: article_id: {article_id} is listed twice")
                seen.add(article_id)
                for column, metric in COUNT_COLUMNS.items():
                    raw = (line.get(column) or "").strip()
                    if raw:
                        parsed.counts.append((article_id, metric, _count(raw, number, column)))
                metadata = _metadata(line, number)
                if metadata is not None:
                    parsed.metadata[article_id] = metadata
                parsed.articles += 1
                progress(1)
    except UnicodeDecodeError as exc:
        raise BadImport(
            f"{_where(path, exc)}: not UTF-8 ({exc.reason}); save it as UTF-8"
        ) from None
    if not parsed.articles:
        raise BadImport("the file has no lines after its header")
    return parsed


def _lines(handle: Iterator[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The file's lines after its checked header, as (line number, column -> cell)."""
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
        if header is None:
            raise BadImport("line 1: the file is empty")
        _check_columns(header)
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) > len(header):
                raise BadImport(
                    f"line {reader.line_num}: {len(row)} fields, the header names {len(header)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=False))
    except csv.Error as exc:  # a field past csv's limit, a NUL byte, a broken quote
        raise BadImport(f"line {reader.line_num}: {exc}") from None


def _where(path: Path, exc: UnicodeDecodeError) -> str:
    """The line of a byte that is not UTF-8 (`exc.start` counts from the file's start:
    it is decoded in one piece)."""
    with path.open("rb") as handle:
        before = handle.read(exc.start)
    return f"line {before.count(NEWLINE) + 1}"


def _check_columns(columns: Sequence[str]) -> None:
    if "article_id" not in columns or "views" not in columns:
        raise BadImport("line 1: the header needs article_id and views")
    known = {"article_id", *COUNT_COLUMNS, *METADATA_COLUMNS}
    seen: set[str] = set()
    for column in columns:
        if column not in known:
            raise BadImport(f"line 1: unknown column {column!r}")
        if column in seen:
            raise BadImport(f"line 1: column {column!r} is named twice")
        seen.add(column)


def _count(raw: str, number: int, column: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadImport(f"line {number}: {column}: expected a whole number, got {raw!r}") from None
    if value < 0:
        raise BadImport(f"line {number}: {column}: must be ≥ 0, got {value}")
    if value >= MAX_COUNT:
        raise BadImport(f"line {number}: {column}: at most {MAX_COUNT - 1}")
    return value


def _metadata(line: dict[str, str], number: int) -> ArticleMeta | None:
    """The line's metadata, checked as an editor's is: a URL tracker would not keep (not
    http(s): `javascript:`, a formula) is refused, not dropped."""
    given = {column: value.strip() for column in METADATA_COLUMNS if (value := line.get(column))}
    given = {column: value for column, value in given.items() if value}
    if not given:
        return None
    if "url" in given and not stored_url(given["url"]):
        raise BadImport(f"line {number}: url: expected an absolute http(s) URL")
    published = published_at(given.pop("published", None))
    if published is None and line.get("published", "").strip():
        raise BadImport(f"line {number}: published: expected ISO 8601, e.g. 2026-11-20")
    try:
        meta = from_dict(given)
    except msgspec.ValidationError as exc:
        column, message = field_of_error(exc)
        raise BadImport(f"line {number}: {column}: {message}") from None
    return msgspec.structs.replace(
        meta, published=published, url=stored_url(meta.url or "") or None
    )


@dataclass(frozen=True, slots=True)
class Imported:
    articles: int
    counts: int
    changed: int  # counts whose value differs from the previous import


async def write(
    pool: Pool, parsed: Parsed, progress: Callable[[int], None] = lambda _: None
) -> Imported:
    """All of it in one transaction, one import at a time: nothing half-imported, and
    two imports of one file at once change the totals once."""
    with database_unavailable_on_error():
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(iq.LOCK_IMPORTS, iq.IMPORT_LOCK_ID)
            await conn.execute(iq.CREATE_IMPORTING)
            await conn.copy_records_to_table(iq.IMPORTING_TABLE, records=parsed.counts)
            progress(len(parsed.counts) // 2)
            changed = await conn.fetchval(iq.APPLY_IMPORT)
            described = sorted({a for a, _, _ in parsed.counts} | set(parsed.metadata))
            await conn.execute(mq.ADD_ARTICLES, described)
            await metadata_store.write(conn, parsed.metadata, Source.EDITOR)
            progress(len(parsed.counts) - len(parsed.counts) // 2)
    return Imported(parsed.articles, len(parsed.counts), int(changed or 0))
