-- A new article has no category, language, author or group until an event, its page or
-- the editors say: the indexes of those columns leave it out (every filter and every list
-- of values asks for a value), so the flush's first row of an article writes two index
-- entries (its key, its publication time), not six.
DROP INDEX articles_category;
CREATE INDEX articles_category ON articles (category) WHERE category IS NOT NULL;
DROP INDEX articles_lang;
CREATE INDEX articles_lang ON articles (lang) WHERE lang IS NOT NULL;
DROP INDEX articles_author;
CREATE INDEX articles_author ON articles (author) WHERE author IS NOT NULL;
DROP INDEX articles_group;
CREATE INDEX articles_group ON articles (group_id) WHERE group_id IS NOT NULL;
