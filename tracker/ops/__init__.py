"""Operations: the Prometheus metrics (one registry per app), JSON logs, and the embedded
Redis and PostgreSQL that `tracker serve` starts when none is configured.

May import: tracker.events, tracker.core."""
