"""The HTTP face: the aiohttp app, its typed AppKeys and the cleanup contexts that open
and close what it holds, the server and its connection limits, middleware, every handler
(ingest, Plausible, pixel, stats, reports, the editors' page, most-read, runbook,
OpenAPI), and the one place error bodies are built.

May import: every side below it (flush, reports, pages, redis_side, pg, ops, events,
core)."""
