-- The day's reader sketch per article (a Redis HyperLogLog, as Redis stores it) and the
-- readers it counts. Sketches of several days merge into the readers of a range.
CREATE TABLE article_daily_uniques (
    article_id text NOT NULL,
    day        date NOT NULL,
    sketch     bytea NOT NULL,
    readers    bigint NOT NULL CHECK (readers >= 0),
    PRIMARY KEY (article_id, day)
);
CREATE INDEX article_daily_uniques_day ON article_daily_uniques (day);
