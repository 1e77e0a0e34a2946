-- Reports: hourly buckets partitioned by month (whole months are dropped once past
-- TRACKER_HOURLY_RETENTION_DAYS), daily roll-ups kept for good, article metadata for
-- filters (group, published), and indexes the report queries scan by.

-- Articles: when published (first seen, or set by `tracker import`) and the group of
-- one story published in several languages or under several slugs.
ALTER TABLE articles ADD COLUMN group_id text;
ALTER TABLE articles ADD COLUMN published timestamptz;
UPDATE articles SET published = first_seen;
ALTER TABLE articles ALTER COLUMN published SET NOT NULL;
ALTER TABLE articles ALTER COLUMN published SET DEFAULT now();
-- Counts brought in by `tracker import` from a previous counter: part of the totals and
-- of all-time reports, never spread over hours that did not have them.
CREATE TABLE article_imported (
    article_id text NOT NULL,
    metric     text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric)
);
INSERT INTO articles (article_id, published)
SELECT DISTINCT t.article_id, now() FROM article_totals t
ON CONFLICT (article_id) DO NOTHING;
CREATE INDEX articles_published ON articles (published);

-- The hourly buckets move into a table partitioned by month.
ALTER TABLE article_hourly RENAME TO article_hourly_unpartitioned;
ALTER INDEX article_hourly_pkey RENAME TO article_hourly_unpartitioned_pkey;
ALTER INDEX article_hourly_hour RENAME TO article_hourly_unpartitioned_hour;
CREATE TABLE article_hourly (
    article_id text NOT NULL,
    metric     text NOT NULL,
    hour       timestamptz NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric, hour)
) PARTITION BY RANGE (hour);
-- Ranking reads a period's rows of one metric: (metric, hour) first, the rest from the
-- index alone.
CREATE INDEX article_hourly_metric_hour ON article_hourly (metric, hour) INCLUDE (article_id, count);

-- One partition per month: those the data needs, this month and the next two (the
-- flusher creates later ones as they come).
DO $$
DECLARE
    month timestamptz;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM article_hourly_unpartitioned
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + make_interval(months => n)
        FROM generate_series(0, 2) AS n
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF article_hourly FOR VALUES FROM (%L) TO (%L)',
            'article_hourly_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM'),
            month,
            month + interval '1 month'
        );
        EXECUTE format(
            'ALTER TABLE %I SET (fillfactor = 70)',
            'article_hourly_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM')
        );
    END LOOP;
END
$$;
INSERT INTO article_hourly SELECT article_id, metric, hour, count FROM article_hourly_unpartitioned;

-- Daily roll-ups, written by the same exactly-once flush as the hourly rows.
CREATE TABLE article_daily (
    article_id text NOT NULL,
    metric     text NOT NULL,
    day        date NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric, day)
) WITH (fillfactor = 70);
CREATE INDEX article_daily_metric_day ON article_daily (metric, day) INCLUDE (article_id, count);
INSERT INTO article_daily (article_id, metric, day, count)
SELECT article_id, metric, (hour AT TIME ZONE 'UTC')::date, sum(count)
FROM article_hourly_unpartitioned
GROUP BY 1, 2, 3;

DROP TABLE article_hourly_unpartitioned;

-- Editors' access tokens: only a hash of each is kept.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX articles_category ON articles (category);
CREATE INDEX articles_lang ON articles (lang);
CREATE INDEX articles_author ON articles (author);
CREATE INDEX articles_group ON articles (group_id);
