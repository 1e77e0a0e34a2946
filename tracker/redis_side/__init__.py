"""The Redis side: the client (one Redis or a Cluster), the Lua scripts (lua/) and the one
runner that calls them, the key layout (keys.py: the only place a key is spelled), the
recorder and batcher that store a request's events in one round trip, the sealed pieces
the flusher claims and releases, pending reads, leases, trending, readers' salts, failed
login attempts, and the startup checks of Redis' settings.

May import: tracker.ops, tracker.events, tracker.core. Never tracker.pg or asyncpg: what
Redis holds reaches PostgreSQL only as plain values (tracker.events.counts)."""
