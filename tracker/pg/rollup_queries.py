"""SQL of the roll-ups made apart from the flush (rollups.py)."""

from typing import Final

# Serialises a roll-up with the flushes: each flush transaction holds it shared, a
# roll-up alone. The number is arbitrary but fixed.
ROLLUP_LOCK_ID: Final = 7_302_194_553
LOCK_SHARED: Final = "SELECT pg_advisory_xact_lock_shared($1)"
LOCK_EXCLUSIVE: Final = "SELECT pg_advisory_xact_lock($1)"

# Which of the days $1 and weeks $2 are rolled up ('d' or 'w', and the date).
ROLLED_OF: Final = """
SELECT 'd' AS kind, day FROM rolled_days WHERE day = ANY($1::date[])
UNION ALL
SELECT 'w', week FROM rolled_weeks WHERE week = ANY($2::date[])
"""

# A batch part's counters (incoming_counters) of the rolled-up days $1 and weeks $2,
# added to their roll-ups.
ADD_ROLLED_DAYS: Final = """
INSERT INTO article_daily AS d (article_id, metric, day, count)
SELECT article_id, metric, (hour AT TIME ZONE 'UTC')::date, sum(count) FROM incoming_counters
WHERE (hour AT TIME ZONE 'UTC')::date = ANY($1::date[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
ON CONFLICT (article_id, metric, day) DO UPDATE SET count = d.count + EXCLUDED.count
"""
ADD_ROLLED_WEEKS: Final = """
INSERT INTO article_weekly AS w (article_id, metric, week, count)
SELECT article_id, metric, date_trunc('week', hour AT TIME ZONE 'UTC')::date, sum(count)
FROM incoming_counters
WHERE date_trunc('week', hour AT TIME ZONE 'UTC')::date = ANY($1::date[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
ON CONFLICT (article_id, metric, week) DO UPDATE SET count = w.count + EXCLUDED.count
"""


def _over_metrics(table: str, then: str) -> str:
    """`then`, over a CTE `m` of every metric of a table found by a skip scan of its
    (metric, ...) index. Both are constants of this module."""
    return f"""
WITH RECURSIVE m AS (
    (SELECT metric FROM {table} ORDER BY metric LIMIT 1)
    UNION ALL
    SELECT (SELECT t.metric FROM {table} t WHERE t.metric > m.metric ORDER BY 1 LIMIT 1)
    FROM m WHERE m.metric IS NOT NULL
)
{then}
"""  # noqa: S608


_EVERY_METRIC: Final = "SELECT metric FROM m WHERE metric IS NOT NULL"
HOURLY_METRICS: Final = _over_metrics("article_hourly", _EVERY_METRIC)
DAILY_METRICS: Final = _over_metrics("article_daily", _EVERY_METRIC)
# The first hour the hourly buckets hold: the least of each metric's (index probes).
FIRST_HOUR: Final = _over_metrics(
    "article_hourly",
    "SELECT min((SELECT min(h.hour) FROM article_hourly h WHERE h.metric = m.metric))"
    " FROM m WHERE m.metric IS NOT NULL",
)

FIRST_ROLLED_DAY: Final = "SELECT min(day) FROM rolled_days"
# The days in [$1, $2) and the weeks wholly inside it that are rolled up ('d' or 'w').
ROLLED_IN: Final = """
SELECT 'd' AS kind, day FROM rolled_days WHERE day >= $1::date AND day < $2::date
UNION ALL
SELECT 'w', week FROM rolled_weeks WHERE week >= $1::date AND week + 7 <= $2::date
"""

# The day's sums from its hours ($2: every metric, so the (metric, hour) index is used).
# They replace what may be there: what a flush of an earlier version wrote.
ROLL_UP_DAY: Final = """
INSERT INTO article_daily AS d (article_id, metric, day, count)
SELECT article_id, metric, $1::date, sum(count) FROM article_hourly
WHERE metric = ANY($2::text[])
  AND hour >= $1::date::timestamp AT TIME ZONE 'UTC'
  AND hour < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (article_id, metric, day) DO UPDATE SET count = EXCLUDED.count
"""
# Listed first: no row back means another flusher rolled the day up already.
MARK_DAY: Final = (
    "INSERT INTO rolled_days (day) VALUES ($1) ON CONFLICT (day) DO NOTHING RETURNING day"
)

# The week's sums from its seven days, all rolled up ($2: every metric).
ROLL_UP_WEEK: Final = """
INSERT INTO article_weekly AS w (article_id, metric, week, count)
SELECT article_id, metric, $1::date, sum(count) FROM article_daily
WHERE metric = ANY($2::text[]) AND day >= $1::date AND day < $1::date + 7
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (article_id, metric, week) DO UPDATE SET count = EXCLUDED.count
"""
MARK_WEEK: Final = (
    "INSERT INTO rolled_weeks (week) VALUES ($1) ON CONFLICT (week) DO NOTHING RETURNING week"
)
