"""SQL statements, with $n parameters; batch writes take arrays (unnest), never a row at a time."""

from typing import Final

MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

# Serialises `tracker migrate` across processes; the number is arbitrary but fixed.
MIGRATION_LOCK_ID: Final = 7_302_194_551
LOCK_MIGRATIONS: Final = "SELECT pg_advisory_xact_lock($1)"
APPLIED_MIGRATIONS: Final = "SELECT version FROM schema_migrations ORDER BY version"
SCHEMA_VERSIONS: Final = "SELECT version, name FROM schema_migrations ORDER BY version"
RECORD_MIGRATION: Final = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"

# No row back: the batch was applied before (a flusher died before deleting it from Redis).
INSERT_APPLIED_BATCH: Final = """
INSERT INTO applied_batches (batch_id, part, parts, shard, events, counters)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (batch_id, part) DO NOTHING
RETURNING batch_id
"""

# A batch's counters are COPYed into this per-connection scratch table, then added to
# the hourly buckets and the totals: COPY is the fastest way in for 100,000 rows.
INCOMING_TABLE: Final = "incoming_counters"
HOURLY_PARTITION_PREFIX: Final = "article_hourly_"
CREATE_INCOMING: Final = """
CREATE TEMPORARY TABLE IF NOT EXISTS incoming_counters (
    article_id text NOT NULL,
    metric     text NOT NULL,
    hour       timestamptz NOT NULL,
    count      bigint NOT NULL
) ON COMMIT DELETE ROWS
"""

# Rows are taken in key order, so concurrent flushers lock rows in the same order.
ADD_HOURLY: Final = """
INSERT INTO article_hourly AS h (article_id, metric, hour, count)
SELECT article_id, metric, hour, count FROM incoming_counters
ORDER BY article_id, metric, hour
ON CONFLICT (article_id, metric, hour) DO UPDATE SET count = h.count + EXCLUDED.count
"""

# Every counted article has a row (for reports' filters), even before any event carried
# its metadata; first seen, it was published in the hour of its first event.
ADD_ARTICLES: Final = """
INSERT INTO articles (article_id, published, first_seen)
SELECT article_id, min(hour), min(hour) FROM incoming_counters GROUP BY 1 ORDER BY 1
ON CONFLICT (article_id) DO NOTHING
"""

ADD_TOTALS: Final = """
INSERT INTO article_totals AS t (article_id, metric, count)
SELECT article_id, metric, sum(count) FROM incoming_counters
GROUP BY article_id, metric
ORDER BY article_id, metric
ON CONFLICT (article_id, metric) DO UPDATE SET count = t.count + EXCLUDED.count
"""

# A sketch read later from Redis holds every reader an earlier one did; keep the larger
# should Redis ever have lost a sketch and started again.
UPSERT_DAILY_UNIQUES: Final = """
INSERT INTO article_daily_uniques AS u (article_id, day, sketch, readers)
SELECT a, date '1970-01-01' + d, s, r
FROM unnest($1::text[], $2::int[], $3::bytea[], $4::bigint[]) AS x (a, d, s, r)
ORDER BY a, d
ON CONFLICT (article_id, day) DO UPDATE
SET sketch = EXCLUDED.sketch, readers = EXCLUDED.readers
WHERE EXCLUDED.readers >= u.readers
"""

# Totals, which pending batch ids are applied, the readers stored for the days whose
# sketches Redis may still hold, and what of the totals was imported, in one statement:
# one snapshot, so a flush committing in between cannot make a batch both missing and
# dropped.
TOTALS_WITH_APPLIED: Final = """
WITH applied AS (
    SELECT coalesce(array_agg(batch_id), '{}') AS ids,
           coalesce(array_agg(part), '{}') AS part_nos,
           coalesce(array_agg(parts), '{}') AS part_counts
    FROM applied_batches WHERE batch_id = ANY($2::text[])
)
SELECT applied.ids, applied.part_nos, applied.part_counts,
       t.article_id, t.metric, t.count, NULL::int AS day
FROM applied
LEFT JOIN article_totals t ON t.article_id = ANY($1::text[])
UNION ALL
SELECT NULL, NULL, NULL, u.article_id, 'readers', u.readers, (u.day - date '1970-01-01')
FROM article_daily_uniques u
WHERE u.article_id = ANY($1::text[]) AND u.day >= date '1970-01-01' + $3::int
UNION ALL
SELECT NULL, NULL, NULL, u.article_id, 'readers_total', sum(u.readers)::bigint, NULL
FROM article_daily_uniques u
WHERE u.article_id = ANY($1::text[])
GROUP BY u.article_id
UNION ALL
SELECT NULL, NULL, NULL, i.article_id, 'imported ' || i.metric, i.count, NULL
FROM article_imported i
WHERE i.article_id = ANY($1::text[]) AND i.count > 0
"""
READERS_TOTAL: Final = "readers_total"
# The metric of an imported count in TOTALS_WITH_APPLIED's rows: "imported <metric>".
IMPORTED: Final = "imported "

# Never the record of a batch still in Redis ($2): its parts that did commit must stay
# known, or resuming it would add them again.
PRUNE_APPLIED_BATCHES: Final = """
DELETE FROM applied_batches
WHERE applied_at < now() - make_interval(days => $1) AND NOT (batch_id = ANY($2::text[]))
"""

RAISE_GENERATION: Final = """
INSERT INTO shard_generations AS g (shard, epoch, generation) VALUES ($1, $2, $3)
ON CONFLICT (shard, epoch) DO UPDATE SET generation = greatest(g.generation, EXCLUDED.generation)
"""

GENERATION_FLOORS: Final = "SELECT epoch, generation FROM shard_generations WHERE shard = $1"

# Monthly partitions of the hourly buckets, by name (article_hourly_YYYYMM).
HOURLY_PARTITIONS: Final = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'article_hourly'
ORDER BY 1
"""
# Serialises partition DDL across flushers; the number is arbitrary but fixed.
PARTITION_LOCK_ID: Final = 7_302_194_552
LOCK_PARTITIONS: Final = "SELECT pg_advisory_xact_lock($1)"

PING: Final = "SELECT 1"

# The (day, article) of every sketch stored for days from $1 on (once Redis is drained,
# every sketch it may hold).
RECENT_SKETCHES: Final = """
SELECT (day - date '1970-01-01') AS day, article_id FROM article_daily_uniques
WHERE day >= date '1970-01-01' + $1::int
"""

# The primary's WAL position now (after a commit, at or past the commit's record).
PRIMARY_POSITION: Final = "SELECT pg_current_wal_lsn()::text"
# True once the replica replayed up to $1; NULL (not a replica: the primary itself) counts.
REPLAYED: Final = (
    "SELECT pg_last_wal_replay_lsn() IS NULL OR pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
)
