-- Weekly roll-ups (weeks from Monday, UTC) of the daily ones, built apart from the flush
-- once a week has ended: a long period is read as its whole weeks plus a few days, so a
-- report's cost follows the rows it answers, not the length of the history.
CREATE TABLE article_weekly (
    article_id text NOT NULL,
    metric     text NOT NULL,
    week       date NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric, week)
);
CREATE INDEX article_weekly_metric_week ON article_weekly (metric, week) INCLUDE (article_id, count);
-- The weeks whose weekly rows are the sums of their days. A flush that adds to a week
-- that has ended takes it off this list in its own transaction; the upkeep rolls it up
-- again. Reports read only the weeks listed here from article_weekly.
CREATE TABLE rolled_weeks (
    week      date PRIMARY KEY,
    rolled_at timestamptz NOT NULL DEFAULT now()
);
