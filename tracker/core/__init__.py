"""Core: settings from the environment, time, errors as enums, and the article metadata
fields with their authority. Plain values and rules, no I/O.

May import: nothing of tracker (every other side imports this one)."""
