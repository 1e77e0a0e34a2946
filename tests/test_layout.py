"""The package's shape: a folder per side, each saying what it may import, the sides kept
apart by import-linter's contracts; Lua and SQL in files; no import cycles; small modules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tracker"
SIDES = {
    "core",
    "events",
    "ops",
    "redis_side",
    "pg",
    "pages",
    "flush",
    "reports",
    "services",
    "web",
    "cli",
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (`tracker.pg.store`)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path) -> set[str]:
    """The dotted names `path` imports from (absolute imports only: tracker uses no others)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {path}"
            found.add(node.module or "")
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_tree_shows_the_sides() -> None:
    """Only the entry points at the top; every module in a side's folder, and every side
    named in the layers contract with a docstring saying what it may import (before: 62
    modules in one folder)."""
    top = {path.name for path in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py"}
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == SIDES
    for side in SIDES:
        doc = ast.get_docstring(ast.parse((PACKAGE / side / "__init__.py").read_text()))
        assert doc is not None, side
        assert "May import:" in doc, side
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    named = {name.strip().removeprefix("tracker.") for layer in layers for name in layer.split("|")}
    assert named == SIDES


def test_no_module_imports_a_module_that_imports_it() -> None:
    found = modules()
    graph = {name: {i for i in imports_of(path) if i in found} for name, path in found.items()}
    cycles = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph[b])
    assert cycles == []


SQL_STATEMENT = re.compile(
    r"""["'](\s*)(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s)"""
)


def test_scripts_and_queries_live_in_files() -> None:
    """Lua in tracker/redis_side/lua, SQL in the *queries.py modules (and tracker/pg/sql's
    migrations): a module that does the work names its statements, never spells them."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "redis.call(" not in text, f"Lua inside {path.name}: it belongs in lua/"
        if not path.stem.endswith("queries"):
            found = SQL_STATEMENT.search(text)
            assert found is None, f"SQL inside {path.name}: {found and found.group()!r}"
    assert sorted(p.stem for p in (PACKAGE / "redis_side" / "lua").glob("*.lua"))
    assert sorted(p.stem for p in (PACKAGE / "pg" / "sql").glob("*.sql"))


def test_no_module_is_past_350_lines() -> None:
    """STYLE.md's size: 350 lines in all, 300 of code (not blank, comments or docstrings)."""
    long = {}
    for path in PACKAGE.rglob("*.py"):
        if len(path.read_text().splitlines()) > 350:
            long[path.name] = len(path.read_text().splitlines())
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
    from tracker.reports.stats import ArticleStats
    from tracker.web.openapi import STATS_DESCRIPTIONS, STATS_KEYS, build_openapi

    schema = build_openapi()["components"]["schemas"]["ArticleStats"]
    fields = set(ArticleStats.__struct_fields__)
    assert set(schema["required"]) == set(schema["properties"]) == fields
    assert set(STATS_DESCRIPTIONS) | set(STATS_KEYS) <= fields
    assert schema["properties"]["read_through"]["maximum"] == 1


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: the sides in layers, the Redis and
    PostgreSQL sides apart, aiohttp only in the HTTP face and the page reader
    (import-linter, as `lint-imports` runs them)."""
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
