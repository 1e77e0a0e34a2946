"""SQL of `tracker import`, with $n parameters."""

from typing import Final

# One import at a time (transaction-scoped); the number is arbitrary but fixed.
IMPORT_LOCK_ID: Final = 7_302_194_553
LOCK_IMPORTS: Final = "SELECT pg_advisory_xact_lock($1)"

# `tracker import`: the file's counts are COPYed here, then they replace what an earlier
# import set (the totals change by the difference): importing twice changes nothing.
IMPORTING_TABLE: Final = "importing_counts"
CREATE_IMPORTING: Final = """
CREATE TEMPORARY TABLE importing_counts (
    article_id text NOT NULL,
    metric     text NOT NULL,
    count      bigint NOT NULL
) ON COMMIT DROP
"""
APPLY_IMPORT: Final = """
WITH changes AS (
    SELECT i.article_id, i.metric, i.count - coalesce(p.count, 0) AS delta
    FROM importing_counts i LEFT JOIN article_imported p USING (article_id, metric)
), totals AS (
    INSERT INTO article_totals AS t (article_id, metric, count)
    SELECT article_id, metric, delta FROM changes WHERE delta <> 0
    ORDER BY 1, 2
    ON CONFLICT (article_id, metric) DO UPDATE SET count = t.count + EXCLUDED.count
), kept AS (
    INSERT INTO article_imported AS p (article_id, metric, count)
    SELECT article_id, metric, count FROM importing_counts
    ORDER BY 1, 2
    ON CONFLICT (article_id, metric) DO UPDATE SET count = EXCLUDED.count
)
SELECT count(*) FROM changes WHERE delta <> 0
"""
