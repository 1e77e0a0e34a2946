-- Roll-ups made apart from the flush. A day is rolled up (its daily rows summed from its
-- hours) once it has ended, a week (Monday to Sunday, UTC) once its seven days are; from
-- then on a flush that brings counts of a rolled-up day or week adds them to its roll-up in
-- the same transaction. So a listed day's or week's roll-up always equals its hours, the
-- flush writes one roll-up less for the current day, and a long period is read as its
-- whole weeks plus a few days: a report's cost follows the rows it answers.
CREATE TABLE rolled_days (
    day       date PRIMARY KEY,
    rolled_at timestamptz NOT NULL DEFAULT now()
);
-- Until now the flush kept every day's daily rows, today's included: all are rolled up.
INSERT INTO rolled_days (day) SELECT DISTINCT day FROM article_daily;

CREATE TABLE article_weekly (
    article_id text NOT NULL,
    metric     text NOT NULL,
    week       date NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (article_id, metric, week)
);
CREATE INDEX article_weekly_metric_week ON article_weekly (metric, week) INCLUDE (article_id, count);
CREATE TABLE rolled_weeks (
    week      date PRIMARY KEY,
    rolled_at timestamptz NOT NULL DEFAULT now()
);
