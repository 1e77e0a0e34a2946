-- Article metadata by source (metadata.py): 1 editors, 2 the article's own page, 3 events
-- of trusted senders, 4 an event's first claim. `articles` keeps what is shown: each
-- field from the most authoritative source that has it, and whether that is verified
-- (any source but a claim; a claim is dropped once another source speaks).
CREATE TABLE article_sources (
    article_id text NOT NULL,
    source     smallint NOT NULL CHECK (source BETWEEN 1 AND 4),
    title      text,
    url        text,
    category   text,
    lang       text,
    author     text,
    group_id   text,
    published  timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, source)
);

ALTER TABLE articles ADD COLUMN verified boolean NOT NULL DEFAULT false;
-- The article's page as counted events named it (on a site origin), and how reading it
-- last went: tracker fetches it for metadata the page declares itself.
ALTER TABLE articles ADD COLUMN page_url text;
ALTER TABLE articles ADD COLUMN page_checked_at timestamptz;
ALTER TABLE articles ADD COLUMN page_outcome text;

-- What events wrote before this release was never checked: it becomes a claim.
INSERT INTO article_sources (article_id, source, title, url, category, lang, author, group_id)
SELECT article_id, 4, title, url, category, lang, author, group_id
FROM articles
WHERE coalesce(title, url, category, lang, author, group_id) IS NOT NULL;
