"""The web page at ``/ui``: its static files, and the cookie sign-in it uses (``websession.py``).

The page is plain ES modules and one CSS file under ``static/ui``: nothing
to build, no third-party host to reach, so it works on an offline network.
Every piece of data it shows comes from the JSON API; the only routes here
are the files and the cookie sign-in that a browser needs and a script
with a key does not. Files are read once and served from memory with an
ETag (they are a few hundred KiB in all).
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from cargohold.api import webui_schemas
from cargohold.api.accounts import user_json
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import json_body, validate_body
from cargohold.api.native import API, Route, json_response
from cargohold.api.websession import WEB_SESSIONS, clear_cookies, set_cookies
from cargohold.errors import NotFound

UI = "/ui"
#: The page's own headers: only its own origin may supply scripts, styles and data.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


class NoSuchFile(NotFound):
    code = "no_such_file"
    title = "No such file of the web page"


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif not entry.name.startswith("."):
            found[prefix + entry.name] = entry
    return found


_FILES: dict[str, tuple[bytes, str, str]] = {}


def _file(name: str) -> tuple[bytes, str, str]:
    """(body, media type, ETag) of a file of the page; only files that exist, no path games."""
    if not _FILES:
        for path, entry in _walk(resources.files("cargohold.api").joinpath("static/ui")).items():
            body = entry.read_bytes()
            suffix = "." + path.rsplit(".", 1)[-1]
            media = _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
            _FILES[path] = (body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    found = _FILES.get(name)
    if found is None:
        raise NoSuchFile(f"the web page has no file {name!r}")
    return found


async def page_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(UI + "/")


async def page_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("path") or "index.html"
    body, media, etag = _file(name)
    headers = {**PAGE_HEADERS, "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if media.startswith("text/") else None
    return web.Response(body=body, content_type=media, charset=charset, headers=headers)


def _session_json(request: web.Request, user: dict[str, object], family: str | None) -> dict[str, object]:
    sessions = request.app[WEB_SESSIONS]
    return {
        "user": user,
        "csrf_token": sessions.csrf_token(family) if family else None,
        "idle_timeout": sessions.idle_timeout,
    }


async def cookie_login(request: web.Request) -> web.Response:
    """Sign in as ``/auth/login`` does (same throttle); the session goes into cookies, not the body."""
    raw = await json_body(request)
    if isinstance(raw.get("name"), str):
        note(request, user_name=raw["name"][:64])
    body = validate_body(raw, webui_schemas.CookieLogin)
    session = await request.app[SERVICES].sessions.login(body.name, body.password, request.remote)
    note(request, user_id=session.user.id)
    token = request.app[WEB_SESSIONS].signer.issue(session.user.id, session.user.name, session.family_id)
    response = json_response(_session_json(request, user_json(session.user), session.family_id))
    set_cookies(request, response, token, session.family_id)
    return response


async def cookie_session(request: web.Request) -> web.Response:
    who = principal(request)
    user = await request.app[SERVICES].accounts.get_user(who, who.name)
    return json_response(_session_json(request, user_json(user), who.session))


async def cookie_logout(request: web.Request) -> web.Response:
    """End the session (its refresh family: every token of it stops) and drop the cookies."""
    who = principal(request)
    if who.session is not None:
        await request.app[SERVICES].sessions.logout(who)
    response = web.Response(status=204)
    clear_cookies(request, response)
    return response


COOKIE = API + "/auth/cookie"
ROUTES: tuple[Route, ...] = (
    Route("GET", UI, page_root, "The web page (redirects to /ui/)", "ui", status=308, produces=""),
    Route("GET", UI + "/", page_file, "The web page", "ui", produces="text/html"),
    Route(
        "GET",
        UI + "/{path:[A-Za-z0-9_./-]+}",
        page_file,
        "A file of the web page (scripts, styles)",
        "ui",
        produces="text/javascript,text/css,text/html",
    ),
    Route(
        "POST",
        COOKIE + "/login",
        cookie_login,
        "Sign in for the web page: an HttpOnly session cookie and a CSRF cookie (throttled like login)",
        "auth",
        action="auth.login",
        body=webui_schemas.CookieLogin,
        answer=webui_schemas.CookieSession,
    ),
    Route(
        "GET",
        COOKIE,
        cookie_session,
        "Who the session cookie signs in, its CSRF token and idle timeout",
        "auth",
        action="auth.session",
        answer=webui_schemas.CookieSession,
    ),
    Route(
        "POST",
        COOKIE + "/logout",
        cookie_logout,
        "Sign the web page out: ends the session and clears its cookies (needs X-CSRF-Token)",
        "auth",
        action="auth.logout",
        status=204,
    ),
)
