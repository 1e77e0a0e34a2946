"""Header sets built once and shared by the answers of the routes that answer by
themselves (ingest_route.py, stats_route.py): an answer's CORS headers for its page's
origin, kept per allowed origin."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tracker.core.settings import Settings
from tracker.web.middleware import cors_headers, origin_allowed

# Header sets kept per allowed origin (the configured ones, and the site's own names).
MAX_KEPT_ORIGINS: Final = 64
Headers = CIMultiDictProxy[str]


def frozen(headers: dict[str, str]) -> Headers:
    return CIMultiDictProxy(CIMultiDict(headers))


class CorsSets:
    """`base` plus the CORS headers of an answer to a page of an allowed origin; `base`
    plus Vary alone otherwise (every answer on these paths varies with Origin)."""

    def __init__(self, settings: Settings, base: dict[str, str]) -> None:
        self.base = base
        self.no_cors: Final = frozen({**base, "Vary": "Origin"})
        self.any_origin: Headers | None = None
        if "*" in settings.allowed_origins:
            self.any_origin = frozen({**base, **cors_headers("*")})
        self._by_origin: dict[str, Headers] = {}

    def of(self, request: web.Request, origin: str) -> Headers | None:
        """The headers for a page of `origin`; None if it may not call this path."""
        if self.any_origin is not None:
            return self.any_origin
        kept = self._by_origin.get(origin)
        if kept is not None:
            return kept
        if not origin_allowed(request, origin):
            return None
        headers = frozen({**self.base, **cors_headers(origin)})
        if len(self._by_origin) < MAX_KEPT_ORIGINS:
            self._by_origin[origin] = headers
        return headers
