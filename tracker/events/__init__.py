"""Events: what a view, share or engage event is (msgspec Structs, validation), how it is
counted (the counters a batch carries from Redis to PostgreSQL as plain values), which
agents are bots or link previewers, which referrers are share channels, and Plausible's
events mapped onto tracker's.

May import: tracker.core."""
