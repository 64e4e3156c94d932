"""Sign-in for the web page: an HttpOnly session cookie with a CSRF token beside it.

The page must not hold a bearer credential where a script could read it, so
its sign-in is a cookie the browser sends and JavaScript cannot see. The
cookie is an access token (``service/tokens.py``) of a refresh *family*
started by the same sign-in as the JSON API's ``/auth/login``: signing out,
a password change or an admin disabling the user revokes the family, and the
cookie stops working at once, like the API's tokens. Its lifetime is the
idle timeout (``ui_idle_timeout``); every request made with it after a
short while re-issues it, so it lasts while the page is used and lapses
after that long without a request. The refresh token itself never leaves the
server: the page has no use for it.

A cookie is sent by the browser whoever made the page that sends the request,
so a request that changes something must also prove it comes from our page:
it carries ``X-CSRF-Token`` equal to a value derived from the session
(HMAC of the family id) that the page reads from the non-HttpOnly CSRF
cookie (the double-submit pattern, bound to the session so a forged cookie
does not help). ``SameSite=Strict`` keeps both cookies off cross-site
requests as a second wall. Calls with an ``Authorization`` header are not
affected: a bearer key is never sent by a browser on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie

from aiohttp import web
from aiohttp.hdrs import SET_COOKIE

from cargohold.domain.model import Principal
from cargohold.errors import CsrfRejected, Unauthorized
from cargohold.service.auth import AuthService
from cargohold.service.tokens import TokenSigner

SESSION_COOKIE = "cargohold_session"
CSRF_COOKIE = "cargohold_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing: they need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_LABEL = b"cargohold csrf token v1"
_RENEW = "cargohold_renew_cookie"


@dataclass(frozen=True, slots=True)
class CookieSessions:
    """Issues the cookie's token (lifetime = idle timeout) and derives CSRF tokens."""

    signer: TokenSigner
    csrf_key: bytes

    @classmethod
    def build(cls, signing_key: bytes, idle_timeout: float) -> CookieSessions:
        csrf_key = hmac.new(signing_key, _CSRF_LABEL, hashlib.sha256).digest()
        return cls(TokenSigner(signing_key, idle_timeout), csrf_key)

    @property
    def idle_timeout(self) -> int:
        return self.signer.ttl_seconds

    def csrf_token(self, family_id: str) -> str:
        digest = hmac.new(self.csrf_key, family_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def renew_after(self) -> float:
        """Seconds after which a request re-issues the cookie: often enough to keep it alive."""
        return min(60.0, self.idle_timeout / 4)


WEB_SESSIONS = web.AppKey("web_sessions", CookieSessions)


def uses_cookie(request: web.Request) -> bool:
    """The request signs in with the page's cookie (a bearer header always wins)."""
    return "Authorization" not in request.headers and SESSION_COOKIE in request.cookies


async def cookie_principal(request: web.Request, auth: AuthService, method: str) -> Principal:
    """Who the session cookie belongs to; state-changing methods must carry the CSRF token."""
    sessions = request.app[WEB_SESSIONS]
    token = request.cookies[SESSION_COOKIE]
    claims = auth.tokens.verify(token)  # expired or forged: 401 before anything else
    who = await auth.principal_for_token(token)
    if who.session is None:  # pragma: no cover - every access token names its family
        raise Unauthorized("the session cookie names no session")
    if method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), sessions.csrf_token(who.session).encode()):
            raise CsrfRejected(
                f"a request signed in by the session cookie that changes something needs the "
                f"{CSRF_HEADER} header: the value of the {CSRF_COOKIE} cookie"
            )
    if time.time() - claims.issued_at.timestamp() >= sessions.renew_after():
        request[_RENEW] = (who, sessions.signer.issue(who.user_id, who.name, who.session))
    return who


def _cookie(request: web.Request, name: str, value: str, max_age: int, httponly: bool) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["max-age"] = str(max_age)
    morsel["samesite"] = "Strict"
    morsel["httponly"] = httponly
    morsel["secure"] = request.secure
    return morsel.OutputString()


def set_cookies(request: web.Request, response: web.StreamResponse, token: str, family_id: str) -> None:
    """The session cookie (HttpOnly) and the CSRF cookie the page reads, with the same lifetime.

    Written as headers, not through ``response.set_cookie``: a renewal happens in the
    ``on_response_prepare`` hook, after aiohttp has turned the response's cookies into headers.
    """
    sessions = request.app[WEB_SESSIONS]
    response.headers.add(SET_COOKIE, _cookie(request, SESSION_COOKIE, token, sessions.idle_timeout, True))
    csrf = sessions.csrf_token(family_id)
    response.headers.add(SET_COOKIE, _cookie(request, CSRF_COOKIE, csrf, sessions.idle_timeout, False))


def clear_cookies(request: web.Request, response: web.StreamResponse) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.headers.add(SET_COOKIE, _cookie(request, name, "", 0, name == SESSION_COOKIE))


async def renew_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a request that used an aging cookie gets a fresh one."""
    renewed = request.get(_RENEW)
    written = response.headers.getall(SET_COOKIE, ())
    if renewed is None or any(v.startswith(SESSION_COOKIE + "=") for v in written):
        return  # signed in or out by this very request
    who, token = renewed
    set_cookies(request, response, token, who.session)
