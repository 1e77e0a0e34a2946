-- Counter rows are updated in place every flush: room in each page lets those updates be
-- HOT (no new index entries), which keeps large flushes fast.
ALTER TABLE article_hourly SET (fillfactor = 70);
ALTER TABLE article_totals SET (fillfactor = 70);
