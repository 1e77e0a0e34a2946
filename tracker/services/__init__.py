"""The services a serving process uses, built once and closed once, in order: the servers
(configured or embedded), the Redis client and what records through it, the PostgreSQL
pools, the readers of stats and reports, and the flusher with its loops. One object,
Services, holds them; the HTTP face hands it to its handlers.

May import: tracker.flush, tracker.reports and every side below them. Not aiohttp's
server (only the page reader's client, through tracker.flush)."""
