"""The package's shape: the Redis side and the PostgreSQL side meet only in plain values,
Lua and SQL live in files, and no module imports one that imports it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracker"
REDIS_SIDE = {"scripts", "keys", "recorder", "batches", "pending", "lease", "redis_client"}
POSTGRES_SIDE = {"db", "migrations", "queries", "store", "replica"}


def imports_of(module: str) -> set[str]:
    """Modules of the package (and top-level libraries) that `module` imports."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                found.add(node.module.split(".")[0])
            elif node.level:
                found.update(alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(POSTGRES_SIDE))
def test_postgres_side_knows_nothing_of_redis(module: str) -> None:
    assert imports_of(module) & (REDIS_SIDE | {"redis"}) == set()


@pytest.mark.parametrize("module", sorted(REDIS_SIDE))
def test_redis_side_knows_nothing_of_postgres(module: str) -> None:
    assert imports_of(module) & (POSTGRES_SIDE | {"asyncpg"}) == set()


def test_no_module_imports_a_module_that_imports_it() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    graph = {module: imports_of(module) & modules for module in modules}
    cycles = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph[b])
    assert cycles == []


SQL_STATEMENT = re.compile(
    r"""["'](\s*)(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s)"""
)


def test_scripts_and_queries_live_in_files() -> None:
    """Lua in tracker/lua, SQL in the *queries.py modules (and tracker/sql's migrations):
    a module that does the work names its statements, never spells them (before, this
    test checked the Lua alone; auth.py, replica.py and timeseries.py spelled SQL)."""
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "redis.call(" not in text, f"Lua inside {path.name}: it belongs in tracker/lua"
        if not path.stem.endswith("queries"):
            found = SQL_STATEMENT.search(text)
            assert found is None, f"SQL inside {path.name}: {found and found.group()!r}"
    assert sorted(p.stem for p in (PACKAGE / "lua").glob("*.lua"))
    assert sorted(p.stem for p in (PACKAGE / "sql").glob("*.sql"))


def test_no_module_is_past_three_hundred_lines_of_logic() -> None:
    """Code lines (not blank, not comments or docstrings); the OpenAPI document is a table."""
    long = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "openapi":
            continue
        tree = ast.parse(path.read_text())
        doc_lines: set[int] = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                value = body[0].value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    doc_lines.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
        code = [
            n
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip() and not line.strip().startswith("#") and n not in doc_lines
        ]
        if len(code) > 300:
            long[path.name] = len(code)
    assert long == {}


def test_the_stats_schema_is_made_from_the_struct() -> None:
    """The OpenAPI document's ArticleStats follows stats.ArticleStats (before, it was
    written out by hand beside the Struct): a field added to one is in the other."""
    from tracker.openapi import STATS_DESCRIPTIONS, STATS_KEYS, build_openapi
    from tracker.stats import ArticleStats

    schema = build_openapi()["components"]["schemas"]["ArticleStats"]
    fields = set(ArticleStats.__struct_fields__)
    assert set(schema["required"]) == set(schema["properties"]) == fields
    assert set(STATS_DESCRIPTIONS) | set(STATS_KEYS) <= fields
    assert schema["properties"]["read_through"]["maximum"] == 1


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: the Redis and PostgreSQL sides
    apart, the domain free of aiohttp (import-linter, as `lint-imports` runs them)."""
    # The venv's own command (pip installs it beside this Python); no cache between runs.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 broken" in result.stdout
