"""SQL of the editors' reports, with $n parameters. A period is read from the weekly
roll-ups for the whole weeks it holds that are rolled up, the daily roll-ups for its other
rolled-up days, and the hourly buckets for every other hour (periods.Period.reading); all
time from the running totals, which hold imported counts.

The queries that read a period take their first seven parameters alike: $1 the metrics,
$2 and $3 the ranges of rolled-up days (starts, ends), $4 and $5 the hour ranges (starts,
ends), $6 true for all time, $7 the weeks (their Mondays). A row's key is the article, or
(by group) its group: an article without a group is a group of its own. Filters on
metadata are NULL for "any".
"""

from typing import Final


def _period_counts(columns: str, articles: str = "") -> str:
    """A `counts` CTE of the period's rows (`columns` of them): whole weeks from the
    weekly roll-ups, other full days from the daily ones, the hours at either end from
    the hourly buckets, all time from the totals. `articles`: a condition narrowing them,
    as `AND ...`. Both are constants of this module, never input: values go in as $n
    parameters."""
    return f"""
WITH counts AS (
    SELECT {columns} FROM article_weekly
    WHERE NOT $6 {articles} AND metric = ANY($1::text[]) AND week = ANY($7::date[])
    UNION ALL
    SELECT {columns} FROM article_daily
    JOIN unnest($2::date[], $3::date[]) AS d (first_day, end_day)
      ON day >= d.first_day AND day < d.end_day
    WHERE NOT $6 {articles} AND metric = ANY($1::text[])
    UNION ALL
    SELECT {columns} FROM article_hourly
    JOIN unnest($4::timestamptz[], $5::timestamptz[]) AS r (first_hour, end_hour)
      ON hour >= r.first_hour AND hour < r.end_hour
    WHERE NOT $6 {articles} AND metric = ANY($1::text[])
    UNION ALL
    SELECT {columns} FROM article_totals
    WHERE $6 {articles} AND metric = ANY($1::text[])
)
"""  # noqa: S608


# The top $11 keys by the sum of the metrics; $8 category, $9 lang, $10 author; $12 by
# group; $13 only articles whose metadata is verified.
RANK: Final = (
    _period_counts("article_id, count")
    + """
SELECT CASE WHEN $12 THEN coalesce(a.group_id, a.article_id) ELSE a.article_id END AS key,
       sum(c.count)::bigint AS value
FROM counts c JOIN articles a USING (article_id)
WHERE ($8::text IS NULL OR a.category = $8)
  AND ($9::text IS NULL OR a.lang = $9)
  AND ($10::text IS NULL OR a.author = $10)
  AND (NOT $13 OR a.verified)
GROUP BY 1
ORDER BY value DESC, key
LIMIT $11
"""
)

# The sums of each metric $1 of the period per key; $8 category, $9 lang, $10 author;
# $11 by group. For ratios of two metrics, which rank in Python after adding Redis's.
SUMS_BY_KEY: Final = (
    _period_counts("article_id, metric, count")
    + """
SELECT CASE WHEN $11 THEN coalesce(a.group_id, a.article_id) ELSE a.article_id END AS key,
       c.metric, sum(c.count)::bigint AS count
FROM counts c JOIN articles a USING (article_id)
WHERE ($8::text IS NULL OR a.category = $8)
  AND ($9::text IS NULL OR a.lang = $9)
  AND ($10::text IS NULL OR a.author = $10)
GROUP BY 1, 2
"""
)

# The metrics $1 of the period for the articles $8.
COUNTS_OF: Final = (
    _period_counts("article_id, metric, count", "AND article_id = ANY($8::text[])")
    + """
SELECT article_id, metric, sum(count)::bigint AS count FROM counts GROUP BY 1, 2
"""
)

# Readers over UTC days [$1, $2): the salt of reader ids changes daily, so a range's
# readers are the sum of its days' readers. The top $3 keys; $4 category, $5 lang,
# $6 author; $7 by group; $8 only verified articles.
RANK_READERS: Final = """
SELECT CASE WHEN $7 THEN coalesce(a.group_id, a.article_id) ELSE a.article_id END AS key,
       sum(u.readers)::bigint AS value
FROM article_daily_uniques u JOIN articles a USING (article_id)
WHERE u.day >= date '1970-01-01' + $1::int AND u.day < date '1970-01-01' + $2::int
  AND ($4::text IS NULL OR a.category = $4)
  AND ($5::text IS NULL OR a.lang = $5)
  AND ($6::text IS NULL OR a.author = $6)
  AND (NOT $8 OR a.verified)
GROUP BY 1
ORDER BY value DESC, key
LIMIT $3
"""

# Readers stored per article and day, for days [$1, $2) and the articles $3.
READERS_BY_DAY: Final = """
SELECT article_id, (day - date '1970-01-01') AS day, readers
FROM article_daily_uniques
WHERE article_id = ANY($3::text[])
  AND day >= date '1970-01-01' + $1::int AND day < date '1970-01-01' + $2::int
"""

ARTICLES: Final = """
SELECT article_id, title, url, category, lang, author, group_id, published, verified
FROM articles WHERE article_id = ANY($1::text[])
"""

IMPORTED_VIEWS: Final = """
SELECT article_id, count FROM article_imported
WHERE article_id = ANY($1::text[]) AND metric = 'view' AND count > 0
"""

# Candidates for the groups $1: the articles of those groups, and those articles; the
# caller keeps those whose key is asked for.
GROUP_MEMBERS: Final = """
SELECT coalesce(group_id, article_id) AS key, article_id
FROM articles WHERE group_id = ANY($1::text[]) OR article_id = ANY($1::text[])
"""

APPLIED: Final = """
SELECT batch_id, part, parts FROM applied_batches WHERE batch_id = ANY($1::text[])
"""

# One article's counts per hour over [$2, $3) (hourly), or per day over [$2, $3) (daily:
# a rolled-up day from its roll-up, any other from its hours).
HOURLY_OF: Final = """
SELECT hour AS start, metric, count FROM article_hourly
WHERE article_id = $1 AND hour >= $2 AND hour < $3
"""
DAILY_OF: Final = """
WITH days AS (
    SELECT day FROM rolled_days
    WHERE day >= ($2::timestamptz AT TIME ZONE 'UTC')::date
      AND day < ($3::timestamptz AT TIME ZONE 'UTC')::date
)
SELECT day::timestamp AT TIME ZONE 'UTC' AS start, metric, count FROM article_daily
WHERE article_id = $1 AND day IN (SELECT day FROM days)
UNION ALL
SELECT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', metric, sum(count)::bigint
FROM article_hourly
WHERE article_id = $1 AND hour >= $2 AND hour < $3
  AND (hour AT TIME ZONE 'UTC')::date NOT IN (SELECT day FROM days)
GROUP BY 1, 2
"""
READERS_OF: Final = """
SELECT (day - date '1970-01-01') AS day, readers FROM article_daily_uniques
WHERE article_id = $1 AND day >= date '1970-01-01' + $2::int AND day < date '1970-01-01' + $3::int
"""


def _early_views(hours: str) -> str:
    """Articles' views in their first `hours` (a parameter's name) hours after
    publication, from the hourly buckets: the query's head, conditions to follow."""
    return f"""
SELECT a.article_id AS key, coalesce(sum(h.count), 0)::bigint AS value
FROM articles a
LEFT JOIN article_hourly h
  ON h.article_id = a.article_id AND h.metric = 'view'
 AND h.hour >= date_trunc('hour', a.published)
 AND h.hour < date_trunc('hour', a.published) + make_interval(hours => {hours})
"""  # noqa: S608 - a constant of this module


# The views of the articles $1 in their first $2 hours.
TAKEOFF_OF: Final = (
    _early_views("$2") + "WHERE a.article_id = ANY($1::text[])\nGROUP BY a.article_id\n"
)

# Articles published in [$1, $2) ranked by views in their first $3 hours (hourly
# buckets from the hour of publication); $4 category, $5 lang, $6 author; top $7.
TAKEOFF: Final = (
    _early_views("$3")
    + """WHERE a.published >= $1 AND a.published < $2
  AND ($4::text IS NULL OR a.category = $4)
  AND ($5::text IS NULL OR a.lang = $5)
  AND ($6::text IS NULL OR a.author = $6)
GROUP BY a.article_id
ORDER BY value DESC, key
LIMIT $7
"""
)


def _distinct(column: str) -> str:
    """Every value of an indexed column of articles, by a skip scan of its index (as many
    index probes as values, whatever the number of articles). `column` is a constant."""
    return f"""
WITH RECURSIVE v AS (
    (SELECT {column} AS value FROM articles WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (SELECT a.{column} FROM articles a WHERE a.{column} > v.value ORDER BY 1 LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL
"""  # noqa: S608


CATEGORIES: Final = _distinct("category")
LANGS: Final = _distinct("lang")

# An article's publication time (the start of a series since publication).
PUBLISHED_OF: Final = "SELECT published FROM articles WHERE article_id = $1"
