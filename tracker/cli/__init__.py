"""The command line (`tracker serve`, `flush`, `migrate`, `import`, `report`, `token`,
`article`, ...) and the worker processes `tracker serve --workers N` runs.

May import: everything (it is the top)."""
