"""The flusher: claims what Redis holds, applies it to PostgreSQL exactly once, then
releases it; and the background loops of a serving process (flushing on an interval,
reading article pages).

May import: tracker.pages, tracker.redis_side, tracker.pg and below. Not tracker.reports."""
