"""The operators' runbook, served at /runbook: what each alert means and what to do. Each
alert's runbook_url links its section (`/runbook#trackerflushlagging`), so the page on
call is the one of the version that runs. Rendered once, at start, from static/runbook.md."""

from __future__ import annotations

import html
import itertools
import re
from importlib.resources import files

from aiohttp import web
from markdown_it import MarkdownIt

from tracker.web.app_keys import RUNBOOK

HEADERS = {
    # Nothing on the page runs or loads: no scripts, no styles, no frames.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "public, max-age=300",
}


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: `TrackerFlushLagging` -> `trackerflushlagging`."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def render(markdown: str) -> bytes:
    parser = MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(markdown)
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            opening.attrSet("id", anchor(inline.content))
    title = next((t.content for t in tokens if t.type == "inline"), "tracker runbook")
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"{parser.renderer.render(tokens, parser.options, {})}</body></html>\n"
    )
    return page.encode()


def runbook_page() -> bytes:
    return render(files("tracker").joinpath("static/runbook.md").read_text(encoding="utf-8"))


async def runbook(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[RUNBOOK], content_type="text/html", charset="utf-8", headers=HEADERS
    )
