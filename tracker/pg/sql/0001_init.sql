-- Counters per article, metric ('view' or 'share:<channel>') and hour.
CREATE TABLE article_hourly (
    article_id text NOT NULL,
    metric     text NOT NULL,
    hour       timestamptz NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric, hour)
);
CREATE INDEX article_hourly_hour ON article_hourly (hour);

-- Running totals per article and metric, kept in the same transaction as the buckets.
CREATE TABLE article_totals (
    article_id text NOT NULL,
    metric     text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric)
);

-- What the events said about their article (last value wins).
CREATE TABLE articles (
    article_id text PRIMARY KEY,
    url        text,
    title      text,
    category   text,
    lang       text,
    author     text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

-- Every batch moved from Redis, by id: a batch whose id is here is never added again.
CREATE TABLE applied_batches (
    batch_id   text PRIMARY KEY,
    shard      integer NOT NULL,
    events     bigint NOT NULL,
    counters   integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applied_batches_applied_at ON applied_batches (applied_at);
