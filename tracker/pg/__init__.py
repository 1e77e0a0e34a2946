"""The PostgreSQL side: pools, the schema (sql/, applied by migrations.py), every SQL
statement (in the *queries modules), the store a flushed batch is applied to exactly
once, partitions, the read replica, article metadata by authority, editors' tokens and
sessions, and `tracker import`.

May import: tracker.ops, tracker.events, tracker.core. Never tracker.redis_side or redis."""
