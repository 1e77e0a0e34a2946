"""What an article's own page declares about it, read from its HTML: the article id it
says it is (tracker.js's `data-article`, `<meta name="tracker:article">`) and its
metadata, in this order of preference: tracker.js's `data-*` attributes, `<meta
name="tracker:...">`, JSON-LD (a NewsArticle or other Article: `headline`,
`articleSection`, `author`, `inLanguage`, `datePublished`), Open Graph (`og:title`,
`article:section`, `article:author`, `article:published_time`), then the page's own
`<title>` and `<html lang>`. Parsed with lexbor (selectolax), never by pattern."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin

import msgspec
from selectolax.lexbor import LexborHTMLParser, LexborNode

from tracker.core.metadata import (
    FIELDS,
    MAX_LENGTH,
    PAGE_FIELDS,
    ArticleMeta,
    cleaned,
    from_dict,
    origin_of,
)

# JSON-LD types that describe an article (schema.org's Article and its kinds).
ARTICLE_TYPES: Final = frozenset(
    {
        "Article",
        "NewsArticle",
        "AnalysisNewsArticle",
        "BackgroundNewsArticle",
        "OpinionNewsArticle",
        "ReportageNewsArticle",
        "ReviewNewsArticle",
        "BlogPosting",
        "Report",
        "ScholarlyArticle",
        "TechArticle",
    }
)
JSON_LD_FIELDS: Final = {
    "title": "headline",
    "category": "articleSection",
    "author": "author",
    "lang": "inLanguage",
    "published": "datePublished",
}
OPEN_GRAPH_FIELDS: Final = {
    "title": "og:title",
    "category": "article:section",
    "author": "article:author",
    "published": "article:published_time",
}
_decoder: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class PageDeclares:
    """The article ids a page says it is, and what it says of its article."""

    article_ids: frozenset[str]
    meta: ArticleMeta


def read_page(html: str, page_url: str, site_origins: frozenset[str]) -> PageDeclares:
    """What the page at `page_url` declares. Its URL is its canonical link (or og:url)
    when that is on one of the site's origins, else the page's own address."""
    tree = LexborHTMLParser(html)
    script = tree.css_first("script[data-article]")
    ids = {value for value in (_attr(script, "data-article"), _meta(tree, "tracker:article"))}
    ids.discard(None)
    found: dict[str, Any] = {}
    sources: tuple[Callable[[str], Any], ...] = (
        lambda name: _attr(script, f"data-{name}"),
        lambda name: _meta(tree, f"tracker:{name}"),
        _json_ld_reader(tree),
        lambda name: _open_graph(tree, name),
        lambda name: _fallback(tree, name),
    )
    for name in PAGE_FIELDS:
        for source in sources:
            value = _text_of(source(name))
            if value:
                found[name] = value
                break
    found["url"] = _url(tree, page_url, site_origins)
    return PageDeclares(frozenset(i for i in ids if i), _valid(found))


def _valid(found: dict[str, Any]) -> ArticleMeta:
    """Each value that its field takes (text cut to the field's length); the others left
    out rather than the page refused."""
    kept: dict[str, Any] = {}
    for name in FIELDS:
        value = found.get(name)
        if not isinstance(value, str):
            continue
        value = value.replace("\x00", "").strip()[: MAX_LENGTH.get(name, len(value))]
        try:
            from_dict({name: value})
        except msgspec.ValidationError:
            continue
        kept[name] = value
    return cleaned(from_dict(kept))


def _attr(node: LexborNode | None, name: str) -> str | None:
    return None if node is None else node.attributes.get(name)


def _meta(tree: LexborHTMLParser, name: str) -> str | None:
    """<meta name=... content=...> or <meta property=... content=...>."""
    for node in tree.css("meta[content]"):
        attributes = node.attributes
        if attributes.get("name") == name or attributes.get("property") == name:
            return attributes.get("content")
    return None


def _open_graph(tree: LexborHTMLParser, name: str) -> str | None:
    value = _meta(tree, OPEN_GRAPH_FIELDS[name]) if name in OPEN_GRAPH_FIELDS else None
    if name == "author" and value and value.startswith(("http://", "https://")):
        return None  # a profile's address, not a name
    return value


def _fallback(tree: LexborHTMLParser, name: str) -> str | None:
    if name == "title":
        node = tree.css_first("title")
        return node.text() if node is not None else None
    if name == "lang":
        node = tree.css_first("html")
        return _attr(node, "lang")
    return None


def _url(tree: LexborHTMLParser, page_url: str, site_origins: frozenset[str]) -> str:
    canonical = tree.css_first('link[rel="canonical"]')
    for candidate in (_attr(canonical, "href"), _meta(tree, "og:url")):
        if candidate:
            url = urljoin(page_url, candidate.strip())
            if origin_of(url) in site_origins:
                return url
    return page_url


def _json_ld_reader(tree: LexborHTMLParser) -> Callable[[str], Any]:
    article = next(_json_ld_articles(tree), None)
    if article is None:
        return lambda name: None

    def field(name: str) -> Any:
        value = article.get(JSON_LD_FIELDS.get(name, ""))
        if name == "category" and isinstance(value, list):
            return value[0] if value else None  # the first of its sections
        return value

    return field


def _json_ld_articles(tree: LexborHTMLParser) -> Iterator[dict[str, Any]]:
    for node in tree.css('script[type="application/ld+json"]'):
        try:
            document = _decoder.decode(node.text())
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
        yield from _articles_in(document, depth=0)


def _articles_in(document: Any, *, depth: int) -> Iterator[dict[str, Any]]:
    """Article objects of a JSON-LD document: itself, a list of them, or a @graph."""
    if depth > 3:
        return
    if isinstance(document, list):
        for item in document:
            yield from _articles_in(item, depth=depth + 1)
    elif isinstance(document, dict):
        kinds = document.get("@type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if any(isinstance(kind, str) and kind in ARTICLE_TYPES for kind in kinds):
            yield document
        if "@graph" in document:
            yield from _articles_in(document["@graph"], depth=depth + 1)


def _text_of(value: Any) -> str | None:
    """JSON-LD's values as text: a string, a name (`{"name": ...}`), the first of a list of
    sections, the names of a list of authors."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _text_of(value.get("name"))
    if isinstance(value, list):
        names = [text for text in (_text_of(item) for item in value[:10]) if text]
        return ", ".join(names) if names else None
    return None
