"""SQL of the weekly roll-ups (rollups.py)."""

from typing import Final

# Serialises a week's roll-up with the flushes that add to weeks that have ended; the
# number is arbitrary but fixed.
ROLLUP_LOCK_ID: Final = 7_302_194_553
LOCK_SHARED: Final = "SELECT pg_advisory_xact_lock_shared($1)"
LOCK_EXCLUSIVE: Final = "SELECT pg_advisory_xact_lock($1)"

UNROLL_WEEKS: Final = "DELETE FROM rolled_weeks WHERE week = ANY($1::date[])"

# Every metric of the daily roll-ups, by a skip scan of their (metric, day) index.
_METRICS: Final = """
WITH RECURSIVE m AS (
    (SELECT metric FROM article_daily ORDER BY metric LIMIT 1)
    UNION ALL
    SELECT (SELECT d.metric FROM article_daily d WHERE d.metric > m.metric ORDER BY 1 LIMIT 1)
    FROM m WHERE m.metric IS NOT NULL
)
"""
METRICS: Final = _METRICS + "SELECT metric FROM m WHERE metric IS NOT NULL"  # noqa: S608

# The first day counted: the least of each metric's first day (index probes, no scan).
_LEAST_FIRST_DAY: Final = """
SELECT min((SELECT min(d.day) FROM article_daily d WHERE d.metric = m.metric))
FROM m WHERE m.metric IS NOT NULL
"""
FIRST_DAY: Final = _METRICS + _LEAST_FIRST_DAY

ROLLED_AMONG: Final = "SELECT week FROM rolled_weeks WHERE week = ANY($1::date[])"

# The week's sums from its days ($2: every metric, so the (metric, day) index is used).
ROLL_UP_WEEK: Final = """
INSERT INTO article_weekly AS w (article_id, metric, week, count)
SELECT article_id, metric, $1::date, sum(count) FROM article_daily
WHERE metric = ANY($2::text[]) AND day >= $1::date AND day < $1::date + 7
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (article_id, metric, week) DO UPDATE SET count = EXCLUDED.count
"""

MARK_ROLLED: Final = """
INSERT INTO rolled_weeks (week) VALUES ($1)
ON CONFLICT (week) DO UPDATE SET rolled_at = now()
"""
