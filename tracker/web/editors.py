"""The editors' side of the web: a token on every report endpoint (a Bearer header, or the
cookie the login form sets), the login form, and the /reports page with its assets."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.multipart import BadContentDispositionHeader

from tracker.core.errors import Forbidden, OriginNotAllowed, RateLimited, ReadTimeout, Unauthorized
from tracker.pg.auth import SESSION_S, Tokens, TokenState
from tracker.redis_side.attempts import WINDOW_S
from tracker.redis_side.readers import client_address
from tracker.web.app_keys import PROXIES, SERVICES, SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The session's id (a token cookie of an earlier release is not read).
COOKIE: Final = "tracker_session"
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


def _bearer(request: web.Request) -> str | None:
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def check_token(request: web.Request, token: str | None, *, session: bool = False) -> None:
    """Raises Unauthorized, Forbidden or RateLimited unless `token` (a session id, with
    `session`) is a valid one. Only a credential that fails is counted against its
    address and in all; a valid one is never refused for what others did."""
    if token is None:
        raise Unauthorized(
            "Authorization", "send `Authorization: Bearer TOKEN` (tracker token create)"
        )
    tokens: Tokens = request.app[SERVICES].tokens
    state = await (tokens.check_session(token) if session else tokens.check(token))
    if state is TokenState.VALID:
        return
    if await request.app[SERVICES].failed_attempts.counted(_address(request)):
        raise RateLimited(WINDOW_S)
    if state is TokenState.REVOKED:
        raise Forbidden("Authorization", "this token was revoked")
    raise Unauthorized("Authorization", "unknown token")


async def _check_request(request: web.Request) -> None:
    """A Bearer token, or the session the login form opened."""
    bearer = _bearer(request)
    if bearer is not None:
        await check_token(request, bearer)
    else:
        await check_token(request, request.cookies.get(COOKIE), session=True)


def editors_only(handler: Handler) -> Handler:
    """A handler that answers only with a valid token or session."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        await _check_request(request)
        return await handler(request)

    return checked


def _page(name: str) -> web.Response:
    body = (ASSETS / name).read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


async def reports_page(request: web.Request) -> web.StreamResponse:
    try:
        await _check_request(request)
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
    """A valid token opens a session: the cookie carries its id, never the token."""
    _same_origin(request)
    token = await _form_token(request)
    if token is None:
        raise web.HTTPSeeOther("/reports/login?failed=form")
    try:
        await check_token(request, token or None)
    except RateLimited:
        raise web.HTTPSeeOther("/reports/login?failed=limit") from None
    except (Unauthorized, Forbidden):
        raise web.HTTPSeeOther("/reports/login?failed=1") from None
    session = await request.app[SERVICES].tokens.open_session(token)
    response = web.HTTPSeeOther("/reports")
    response.set_cookie(
        COOKIE,
        session,
        max_age=SESSION_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_over_tls(request),
    )
    raise response


async def _form_token(request: web.Request) -> str | None:
    """The form's token ("" when none was typed); None for a body that is no form a
    browser sends (no boundary, an unknown charset, bytes that are no text, cut short).
    A body slower than TRACKER_READ_TIMEOUT is answered 408."""
    timeout_s = request.app[SETTINGS].read_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            form = await request.post()
    except TimeoutError:
        raise ReadTimeout("body", f"not received within {timeout_s:g} s") from None
    # UnicodeDecodeError is a ValueError; aiohttp warns of a cut part's header (an error
    # where warnings are errors).
    except (ValueError, LookupError, BadContentDispositionHeader):
        return None
    token = form.get("token")
    return token.strip() if isinstance(token, str) else ""


def _over_tls(request: web.Request) -> bool:
    """The browser reached tracker over TLS: this connection is, or a trusted proxy in
    front says so (`X-Forwarded-Proto` from anyone else is a claim)."""
    if request.secure:
        return True
    trusted = request.remote is not None and request.app[PROXIES].holds(request.remote)
    return trusted and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def logout(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    session = request.cookies.get(COOKIE)
    if session:
        await request.app[SERVICES].tokens.close_session(session)
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
