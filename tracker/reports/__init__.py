"""What editors and readers read: per-article stats (PostgreSQL plus what Redis still
holds, cached per process), the popular, take-off and trending reports, and one
article's curve. Each reads Redis first and passes what it found, as plain values, into
one PostgreSQL snapshot, so nothing is counted twice.

May import: tracker.pages, tracker.redis_side, tracker.pg and below. Not tracker.flush."""
