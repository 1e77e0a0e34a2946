"""How reports rank: PostgreSQL's leaders plus what Redis holds of the articles a pending
slice names, and whether an article not named could still outrank the last row asked
for (then the caller asks Redis about more). Plain functions of a connection in the
report's snapshot and the pending values read before it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tracker.core.utc import HOUR_S
from tracker.events.counts import VIEW
from tracker.pg import report_queries as rq
from tracker.reports.data import articles_of, counts_of, members_of, period_args, readers_of
from tracker.reports.metric import metric_of
from tracker.reports.rows import Article, PopularQuery, TakeoffQuery, Unapplied

if TYPE_CHECKING:
    from tracker.pg.db import Conn

Ranked = list[tuple[str, float]]


async def pg_top(conn: Conn, query: PopularQuery) -> list[tuple[str, int]]:
    """PostgreSQL's top keys of the query, with its values (what it holds alone)."""
    wanted = query.offset + query.limit
    filters = (query.category, query.lang, query.author)
    if query.metric.metrics:
        rows = await conn.fetch(
            rq.RANK,
            *await period_args(conn, query.period, query.metric.metrics),
            *filters,
            wanted,
            query.by_group,
            query.verified_only,
        )
    else:
        first_day, end_day = query.period.days
        rows = await conn.fetch(
            rq.RANK_READERS,
            first_day,
            end_day,
            wanted,
            *filters,
            query.by_group,
            query.verified_only,
        )
    return [(row["key"], row["value"]) for row in rows]


async def ranked(
    conn: Conn, query: PopularQuery, pending: Unapplied, asked: set[str]
) -> tuple[Ranked, bool]:
    """(key, value) of the rows asked for, in order, and whether that is settled: every
    key is PostgreSQL's value plus Redis's, over PostgreSQL's top and the articles
    Redis was asked about."""
    top = await pg_top(conn, query)
    values: dict[str, float] = dict(top)
    articles = await articles_of(conn, pending.counts, pending)
    pending_keys = {
        a.key(query.by_group) for a in articles.values() if a.matches(query)
    } - values.keys()
    if not query.metric.metrics:
        # Readers: what the recent days' sketches in Redis gained counts too.
        values = dict(await values_of(conn, query, values.keys() | pending_keys, pending))
    else:
        if pending_keys:
            values.update(await values_of(conn, query, pending_keys, pending))
        for article in articles.values():
            key = article.key(query.by_group)
            if key in values and article.matches(query):
                values[key] += pending.metric(article.article_id, query.metric.metrics)
    members = await members_of(conn, (key for key, _ in top), query.by_group)
    leaders = {article_id for group in members.values() for article_id in group}
    wanted = query.offset + query.limit
    pg_values = [value for _, value in top]
    done = settled(values, pg_values, wanted, pending.bound, asked, leaders)
    return top_of(values, query.offset, query.limit), done


async def ranked_takeoff(
    conn: Conn, query: TakeoffQuery, pending: Unapplied, asked: set[str]
) -> tuple[Ranked, bool]:
    """Articles published in the period by their views in the first hours: PostgreSQL's
    and Redis's, over PostgreSQL's top and the articles Redis was asked about."""
    top = await conn.fetch(rq.TAKEOFF, *takeoff_args(query))
    values: dict[str, float] = {row["key"]: row["value"] for row in top}
    known = set(values) | set(pending.counts)
    articles = await articles_of(conn, known, pending)
    view = PopularQuery(
        query.published, metric_of("views"), query.category, query.lang, query.author
    )
    more = [a for a in known - values.keys() if published_in(articles[a], view)]
    for row in await conn.fetch(rq.TAKEOFF_OF, more, query.window_hours):
        values[row["key"]] = row["value"]
    for article_id in values:
        values[article_id] += early_views(articles[article_id], pending, query.window_hours)
    pg_values = [row["value"] for row in top]
    leaders = {row["key"] for row in top}
    done = settled(values, pg_values, query.limit, pending.bound, asked, leaders)
    return top_of(values, 0, query.limit), done


def settled(
    values: Mapping[str, float],
    pg_values: Sequence[float],
    wanted: int,
    bound: int,
    asked: set[str],
    needed: set[str],
) -> bool:
    """Whether no key left out could outrank the last row asked for: Redis was asked
    about every article of PostgreSQL's top (which may have moved since), and either
    nothing else has anything pending, or PostgreSQL's last value (0 when it has fewer
    rows) plus the bound stays below the last row's."""
    if not needed <= asked:
        return False
    if bound == 0:
        return True
    pg_last = pg_values[wanted - 1] if len(pg_values) >= wanted else 0.0
    ordered = sorted(values.values(), reverse=True)
    return len(ordered) >= wanted and ordered[wanted - 1] > pg_last + bound


async def ranked_by_ratio(
    conn: Conn, query: PopularQuery, pending: Unapplied, min_readers: int
) -> Ranked:
    """A ratio of two metrics (read-through) per key, of the keys with at least
    `min_readers` of the second: every key's sums from PostgreSQL, plus what Redis
    holds (every pending article was read), then ranked here."""
    numerator, denominator = query.metric.metrics
    filters = (query.category, query.lang, query.author)
    sums: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(
        rq.SUMS_BY_KEY,
        *await period_args(conn, query.period, query.metric.metrics),
        *filters,
        query.by_group,
    ):
        sums.setdefault(row["key"], {})[row["metric"]] = row["count"]
    articles = await articles_of(conn, pending.counts, pending)
    for article in articles.values():
        if article.matches(query):
            target = sums.setdefault(article.key(query.by_group), {})
            for metric in query.metric.metrics:
                target[metric] = target.get(metric, 0) + pending.metric(
                    article.article_id, (metric,)
                )
    values: dict[str, float] = {}
    for key, found in sums.items():
        below = found.get(denominator, 0)
        if below and below >= min_readers:
            values[key] = round(min(1.0, found.get(numerator, 0) / below), 3)
    return top_of(values, query.offset, query.limit)


def top_of(values: Mapping[str, float], offset: int, limit: int) -> Ranked:
    ordered = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    return ordered[offset : offset + limit]


async def values_of(
    conn: Conn, query: PopularQuery, keys: set[str], pending: Unapplied
) -> dict[str, int]:
    """PostgreSQL's value of keys that were not in its top (readers: with Redis's)."""
    members = await members_of(conn, keys, query.by_group)
    ids = [i for group in members.values() for i in group]
    if query.metric.metrics:
        counts = await counts_of(conn, query.period, ids, query.metric.metrics)
        return {
            key: sum(sum(counts.get(i, {}).values()) for i in group)
            for key, group in members.items()
        }
    readers = await readers_of(conn, query.period, ids, pending)
    return {key: sum(readers.get(i, 0) for i in group) for key, group in members.items()}


def takeoff_args(query: TakeoffQuery) -> tuple[object, ...]:
    published = query.published
    return (
        published.start,
        published.end,
        query.window_hours,
        query.category,
        query.lang,
        query.author,
        query.limit,
    )


def published_in(article: Article, view: PopularQuery) -> bool:
    opened = article.meta.get("published")
    return (
        opened is not None
        and article.matches(view)
        and view.period.reaches(int(opened.timestamp() // HOUR_S))
    )


def early_views(article: Article, pending: Unapplied, window_hours: int) -> int:
    """The article's pending views in its first `window_hours` after publication."""
    opened = article.meta.get("published")
    if opened is None:
        return 0
    first = int(opened.timestamp() // HOUR_S)
    return sum(
        count
        for (hour, metric), count in pending.by_hour.get(article.article_id, {}).items()
        if metric == VIEW and first <= hour < first + window_hours
    )
