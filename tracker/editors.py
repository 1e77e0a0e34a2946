"""The editors' side of the web: a token on every report endpoint (a Bearer header, or the
cookie the login form sets), the login form, and the /reports page with its assets."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from .auth import Tokens, TokenState
from .errors import Forbidden, OriginNotAllowed, RateLimited, Unauthorized
from .readers import client_address
from .resources import PROXIES, TOKENS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE: Final = "tracker_token"
COOKIE_MAX_AGE_S: Final = 30 * 86_400
# Everything the page needs is served by tracker itself: no inline code, no CDN.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ASSET_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
ASSETS: Final = resources.files("tracker") / "static" / "reports"


def _address(request: web.Request) -> str:
    forwarded_for = ", ".join(request.headers.getall("X-Forwarded-For", ())) or None
    return client_address(request.remote, forwarded_for, request.app[PROXIES])


def _presented(request: web.Request) -> str | None:
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE)


async def check_token(request: web.Request, token: str | None) -> None:
    """Raises Unauthorized, Forbidden or RateLimited unless `token` is a valid one."""
    tokens: Tokens = request.app[TOKENS]
    address = _address(request)
    if token is None:
        raise Unauthorized(
            "Authorization", "send `Authorization: Bearer TOKEN` (tracker token create)"
        )
    if await tokens.blocked(address):
        raise RateLimited(60)
    state = await tokens.check(token)
    if state is TokenState.VALID:
        return
    await tokens.failed(address)
    if state is TokenState.REVOKED:
        raise Forbidden("Authorization", "this token was revoked")
    raise Unauthorized("Authorization", "unknown token")


def editors_only(handler: Handler) -> Handler:
    """A handler that answers only with a valid token."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        await check_token(request, _presented(request))
        return await handler(request)

    return checked


def _page(name: str) -> web.Response:
    body = (ASSETS / name).read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


async def reports_page(request: web.Request) -> web.StreamResponse:
    try:
        await check_token(request, _presented(request))
    except (Unauthorized, Forbidden, RateLimited):
        raise web.HTTPSeeOther("/reports/login") from None
    return _page("reports.html")


async def login_page(request: web.Request) -> web.Response:
    return _page("login.html")


def _same_origin(request: web.Request) -> None:
    """A form POST from another site (login CSRF) is refused: browsers send Origin."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise OriginNotAllowed("Origin", "the login form posts from tracker's own pages only")


async def login(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    form = await request.post()
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        await check_token(request, token or None)
    except (Unauthorized, Forbidden, RateLimited):
        raise web.HTTPSeeOther("/reports/login?failed=1") from None
    response = web.HTTPSeeOther("/reports")
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    response = web.HTTPSeeOther("/reports/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = ASSET_TYPES.get(name[name.rfind(".") :]) if "." in name else None
    path = ASSETS / name
    if kind is None or "/" in name or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=path.read_bytes(),
        content_type=kind,
        charset="utf-8" if kind != "image/svg+xml" else None,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
