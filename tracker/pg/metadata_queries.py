"""SQL of article metadata by source (metadata.py), with $n parameters. The column lists
follow metadata.COLUMNS: built here once from that constant, never from input.

The writes take arrays: $1 article ids, $2 the source, then one array per column in
COLUMNS order. Afterwards SHOWN recomputes what `articles` shows for the ids written."""

from typing import Final

from tracker.core.metadata import COLUMNS, Source

_TYPES: Final = {"published": "timestamptz"}
_COLUMNS: Final = ", ".join(COLUMNS)
# $3, $4, ... : one array parameter per column.
_ARRAYS: Final = ", ".join(
    f"${n}::{_TYPES.get(column, 'text')}[]" for n, column in enumerate(COLUMNS, start=3)
)
_ROWS: Final = f"""
INSERT INTO article_sources AS s (article_id, source, {_COLUMNS})
SELECT x.*
FROM unnest($1::text[], array_fill($2::smallint, ARRAY[cardinality($1::text[])]), {_ARRAYS})
     AS x (article_id, source, {_COLUMNS})
"""


def _upsert(values: list[str]) -> str:
    """The rows' values set to `values` (per column), where that changes anything: each
    statement returns the ids it changed, so only those are recomputed."""
    return (
        _ROWS
        + "ORDER BY 1\nON CONFLICT (article_id, source) DO UPDATE SET "
        + ", ".join(f"{c} = {v}" for c, v in zip(COLUMNS, values, strict=True))
        + ", updated_at = now()\nWHERE ("
        + ", ".join(f"s.{c}" for c in COLUMNS)
        + ") IS DISTINCT FROM ("
        + ", ".join(values)
        + ")\nRETURNING article_id\n"
    )


# A source's values replace what it said before (a page's current declaration, an
# editor's PUT).
REPLACE: Final = _upsert([f"EXCLUDED.{c}" for c in COLUMNS])

# A source's non-empty values replace its earlier ones, empty ones keep them (trusted
# events: the latest non-empty value wins; `tracker article set`; an import's empty cells).
MERGE: Final = _upsert([f"coalesce(EXCLUDED.{c}, s.{c})" for c in COLUMNS])

# An event's first claim: kept only while nobody, itself included, has said anything.
CLAIM: Final = (
    _ROWS
    + "WHERE NOT EXISTS (SELECT 1 FROM article_sources o WHERE o.article_id = x.article_id)\n"
    + "ORDER BY 1\nON CONFLICT (article_id, source) DO NOTHING\nRETURNING article_id\n"
)

# Once a verified source speaks, the claim is no longer shown.
DROP_CLAIMS: Final = f"""
DELETE FROM article_sources c
WHERE c.source = {int(Source.CLAIM)} AND c.article_id = ANY($1::text[])
  AND EXISTS (
      SELECT 1 FROM article_sources o
      WHERE o.article_id = c.article_id AND o.source < {int(Source.CLAIM)}
  )
"""

# What `articles` shows: each field from the most authoritative source that has it; an
# article's first hour stands for its publication when no source says.
SHOWN: Final = (
    "WITH s AS (\n    SELECT article_id,\n"
    + "".join(
        f"        (array_agg({c} ORDER BY source) FILTER (WHERE {c} IS NOT NULL))[1] AS {c},\n"
        for c in COLUMNS
    )
    + f"        bool_or(source < {int(Source.CLAIM)}) AS verified\n"
    + "    FROM article_sources WHERE article_id = ANY($1::text[]) GROUP BY article_id\n)\n"
    + "UPDATE articles a SET "
    + ", ".join(
        f"{c} = coalesce(s.{c}, a.first_seen)" if c == "published" else f"{c} = s.{c}"
        for c in COLUMNS
    )
    + ", verified = s.verified\nFROM s WHERE a.article_id = s.article_id\n"
)

# The page each article's counted events named on a site origin: where tracker reads
# its metadata ($1 ids, $2 URLs).
SET_PAGE_URLS: Final = """
UPDATE articles a SET page_url = x.url
FROM unnest($1::text[], $2::text[]) AS x (article_id, url)
WHERE a.article_id = x.article_id AND a.page_url IS DISTINCT FROM x.url
"""

# Of the articles $1, those whose page is due to be read (never read; read and verified
# more than $2 s ago; read in vain more than $3 s ago), marked as read now so that no
# other flusher reads them too. A verified page is read again at its canonical address.
DUE_PAGES: Final = f"""
UPDATE articles a SET page_checked_at = now()
WHERE a.article_id = ANY($1::text[]) AND a.page_url IS NOT NULL
  AND (a.page_checked_at IS NULL
       OR a.page_checked_at < now() - make_interval(
           secs => CASE WHEN a.page_outcome = 'verified' THEN $2::float8 ELSE $3::float8 END))
RETURNING a.article_id, coalesce(
    (SELECT s.url FROM article_sources s
     WHERE s.article_id = a.article_id AND s.source = {int(Source.PAGE)}),
    a.page_url) AS url
"""

PAGE_CHECKED: Final = "UPDATE articles SET page_outcome = $2 WHERE article_id = $1"

# Editors may describe an article before it is read: its row, if it has none yet.
ADD_ARTICLES: Final = """
INSERT INTO articles (article_id) SELECT * FROM unnest($1::text[]) ORDER BY 1
ON CONFLICT (article_id) DO NOTHING
"""

# One article's metadata as each source has it, most authoritative first.
SOURCES_OF: Final = f"""
SELECT source, {_COLUMNS}, updated_at FROM article_sources
WHERE article_id = $1 ORDER BY source
"""

SHOWN_OF: Final = f"""
SELECT article_id, {_COLUMNS}, verified, page_url, page_checked_at, page_outcome
FROM articles WHERE article_id = $1
"""
