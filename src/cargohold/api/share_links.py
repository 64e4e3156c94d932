"""Share links: managed under ``/api/v1/shares``, used by anyone at ``/s/{token}``.

The management routes are ordinary authenticated API calls. The public routes
under ``/s/`` carry their own credential (the token, maybe a password) and
talk to two kinds of client: tools (curl, scripts), which get problem+json
and a ``Basic`` challenge, and browsers (an ``Accept`` preferring HTML), which
get small HTML pages: a password form, a folder listing, an error page. That
choice of rendering is made in one place, :func:`_render_public_error`.
"""

from __future__ import annotations

import html
import string
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

from aiohttp import BasicAuth, web

from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import bool_query, cursor_query, form_body, int_query, model_body
from cargohold.api.native import API, TAIL, Route, json_response
from cargohold.api.object_responses import content_disposition, stream_object_response
from cargohold.domain.model import ObjectRecord
from cargohold.domain.ranges import ByteRange
from cargohold.errors import CargoholdError, InvalidArgument
from cargohold.metadata.repositories.share_links import ShareLink
from cargohold.problems import from_error, renders_errors
from cargohold.service.share_links import (
    Credentials,
    Opened,
    PasswordRequired,
    Seen,
    ShareLinkService,
    WrongPassword,
)

SHARES = API + "/shares"
PUBLIC = "/s/{token}"
REST = PUBLIC + "/{rest:" + TAIL + "}"
COOKIE = "cargohold_share"
PASSWORD_HEADER = "X-Share-Password"
#: Tools get the errors' Basic challenge; browsers a scheme they do not know, so they show our form.
FORM_CHALLENGE = 'Form realm="share"'
MAX_FORM_BYTES = 8 * 1024
#: Every public answer: never stored by shared caches, never leaks the token in a Referer.
PUBLIC_HEADERS = {"Cache-Control": "private, no-cache", "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {
    **PUBLIC_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}


def _shares(request: web.Request) -> ShareLinkService:
    return request.app[SERVICES].share_links


def share_json(link: ShareLink, now: datetime | None = None) -> dict[str, Any]:
    """A link as the API shows it: everything except its token and password hash."""
    return {
        "id": link.id,
        "bucket": link.bucket_name,
        "key": link.key,
        "prefix": link.prefix,
        "version_id": link.version_id,
        "owner": link.owner_name,
        "status": link.state(now or datetime.now(UTC)),
        "has_password": link.has_password,
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "max_downloads": link.max_downloads,
        "downloads": link.downloads,
        "created_at": link.created_at.isoformat(),
        "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
    }


# -- managing links (authenticated) ----------------------------------------------------


def expiry_from(body: schemas.CreateShare) -> datetime | None:
    """``expires_at`` (ISO 8601 with a zone) or ``expires_in`` (whole seconds from now), not both."""
    if body.expires_in is None:
        return body.expires_at
    if body.expires_at is not None:
        raise InvalidArgument("give expires_at or expires_in, not both", field="expires_in")
    return datetime.now(UTC) + timedelta(seconds=body.expires_in)


async def create_share(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CreateShare)
    bucket, key, prefix = body.bucket, body.key, body.prefix
    note(request, bucket=bucket, key=key if key is not None else prefix)
    link, token = await _shares(request).create(
        principal(request),
        bucket,
        key=key,
        prefix=prefix,
        password=body.password,
        expires_at=expiry_from(body),
        max_downloads=body.max_downloads,
        version_id=body.version_id,
    )
    note(request, detail={"link": link.id})
    path = "/s/" + token
    return json_response(
        {**share_json(link), "token": token, "url": path, "absolute_url": str(request.url.origin()) + path},
        status=201,
    )


async def list_shares(request: web.Request) -> web.Response:
    everything = bool_query(request, "all")
    links = await _shares(request).list_links(
        principal(request), everything=everything, bucket_name=request.query.get("bucket")
    )
    now = datetime.now(UTC)
    return json_response({"shares": [share_json(link, now) for link in links]})


async def get_share(request: web.Request) -> web.Response:
    link = await _shares(request).get(principal(request), request.match_info["link_id"])
    note(request, bucket=link.bucket_name, key=link.key or link.prefix, detail={"link": link.id})
    return json_response(share_json(link))


async def revoke_share(request: web.Request) -> web.Response:
    link = await _shares(request).revoke(principal(request), request.match_info["link_id"])
    note(request, bucket=link.bucket_name, key=link.key or link.prefix, detail={"link": link.id})
    return json_response(share_json(link))


# -- using links (public) --------------------------------------------------------------


def prefers_html(accept: str | None) -> bool:
    """True when the client names text/html in ``Accept`` and likes it at least as much as JSON.

    Browsers list text/html first; curl, httpx and most tools send ``*/*``,
    which names nothing, so they get JSON.
    """
    weights: dict[str, float] = {}
    for item in (accept or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    html_q = weights.get("text/html", 0.0)
    json_q = max(weights.get(m, 0.0) for m in ("application/json", "application/*", "*/*"))
    return html_q > 0 and html_q >= json_q


def _wants_page(request: web.Request) -> bool:
    return request.method != "HEAD" and prefers_html(request.headers.get("Accept"))


def credentials(request: web.Request) -> Credentials:
    """The password (header, or Basic auth with any user name), the cookie and the client address."""
    password = request.headers.get(PASSWORD_HEADER)
    authorization = request.headers.get("Authorization", "")
    if password is None and authorization[:6].lower() == "basic ":
        try:
            password = BasicAuth.decode(authorization, encoding="utf-8").password
        except ValueError:
            password = None
    return Credentials(password, request.cookies.get(COOKIE), request.remote or "unknown")


def _render_public_error(request: web.Request, error: CargoholdError) -> web.Response:
    """Errors on the public surface: problem+json for tools, an HTML page for browsers."""
    if _wants_page(request):
        return _error_page(request, error)
    response = from_error(error)
    response.headers.update(PUBLIC_HEADERS)
    return response


_public_errors = renders_errors(_render_public_error)


def _noter(request: web.Request) -> Seen:
    """Puts a link's bucket and target on this call's history row, refused or not."""

    def seen(link: ShareLink) -> None:
        note(request, bucket=link.bucket_name, key=link.key or link.prefix, detail={"link": link.id})

    return seen


async def public_get(request: web.Request) -> web.StreamResponse:
    """GET or HEAD of a link: the object, an object under a prefix, or the prefix's listing."""
    service = _shares(request)
    rest = request.match_info.get("rest")
    # The listing's parameters are judged before the link: a bad one is a 400 whatever the link.
    page = _page_query(request) if rest is None else None
    opened = await service.open(request.match_info["token"], credentials(request), _noter(request))
    link = opened.link
    if link.prefix is not None and page is not None:
        return await _listing(request, opened, *page)
    record = await service.find(opened, rest)
    note(request, key=record.key, version_id=record.version_id or None)
    if rest is None and _wants_page(request) and DOWNLOAD not in request.query:
        return _object_page(record, request.match_info["token"])

    async def admit(byte_range: ByteRange | None) -> None:
        note(request, size=byte_range.length if byte_range else record.size)
        if byte_range is None or byte_range.start == 0:  # a resumed range is the same download
            await service.count_download(link, record.key)

    headers = {**PUBLIC_HEADERS, "Content-Disposition": content_disposition(_file_name(record))}
    return await stream_object_response(request, request.app[SERVICES].objects, record, headers, admit=admit)


def _file_name(record: ObjectRecord) -> str:
    return record.key.rsplit("/", 1)[-1] or "download"


def _page_query(request: web.Request) -> tuple[int, str | None]:
    """A listing page's ``limit`` and ``cursor``, validated."""
    return int_query(request, "limit", 1000, minimum=1, maximum=1000), cursor_query(request)


async def _listing(request: web.Request, opened: Opened, limit: int, cursor: str | None) -> web.Response:
    page = await _shares(request).listing(opened, limit, cursor)
    prefix = opened.link.prefix or ""
    base = "/s/" + request.match_info["token"] + "/"
    entries = [
        {
            "name": o.key[len(prefix) :],
            "size": o.size,
            "etag": o.etag,
            "content_type": o.content_type,
            "last_modified": o.created_at.isoformat(),
            "url": base + quote(o.key[len(prefix) :], safe="/"),
        }
        for o in page.objects
    ]
    if _wants_page(request):
        return _listing_page(entries, page.next_cursor, request.match_info["token"])
    body = {"objects": entries, "next_cursor": page.next_cursor, "truncated": page.next_cursor is not None}
    return json_response(body, headers=PUBLIC_HEADERS)


async def public_unlock(request: web.Request) -> web.Response:
    """The browser form's POST: a right password sets a cookie and sends the browser back (303)."""
    form = await form_body(request, MAX_FORM_BYTES)
    password = form.get("password")
    if not isinstance(password, str) or not password:
        raise PasswordRequired("type the link's password")
    token = request.match_info["token"]
    client = request.remote or "unknown"
    _, cookie, max_age = await _shares(request).unlock(token, password, client, _noter(request))
    response = web.Response(status=303, headers={**PUBLIC_HEADERS, "Location": request.raw_path})
    response.set_cookie(
        COOKIE,
        cookie,
        path="/s/" + token,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


# -- pages for browsers ------------------------------------------------------------------

_TEMPLATE = string.Template(
    resources.files("cargohold.api").joinpath("static/share.html").read_text(encoding="utf-8")
)


def _page(status: int, title: str, content: str, headers: dict[str, str] | None = None) -> web.Response:
    """A page from the template; ``content`` must already be escaped HTML."""
    text = _TEMPLATE.substitute(title=html.escape(title), content=content)
    return web.Response(
        status=status, text=text, content_type="text/html", headers={**PAGE_HEADERS, **(headers or {})}
    )


def _password_form(request: web.Request, message: str) -> web.Response:
    action = html.escape(request.raw_path, quote=True)
    content = (
        f'<p class="error">{html.escape(message)}</p>' if message else "<p>This link needs a password.</p>"
    ) + (
        f'<form method="post" action="{action}">'
        '<label>Password <input type="password" name="password" autocomplete="current-password" '
        'required autofocus></label> <button type="submit">Open</button></form>'
    )
    return _page(401, "Password required", content, {"WWW-Authenticate": FORM_CHALLENGE})


def _error_page(request: web.Request, error: CargoholdError) -> web.Response:
    if isinstance(error, WrongPassword):
        return _password_form(request, "Wrong password, try again.")
    if isinstance(error, PasswordRequired):
        return _password_form(request, "")
    headers = {}
    if "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    content = f"<p>{html.escape(error.detail)}</p>"
    return _page(error.status, error.title, content, headers)


#: ``?download`` on a link to one object: its bytes, even for a browser (which otherwise gets a page).
DOWNLOAD = "download"


def _object_page(record: ObjectRecord, token: str) -> web.Response:
    """What a person opening a link to one file sees: its name, its size and a download button."""
    name = _file_name(record)
    href = html.escape(f"/s/{quote(token, safe='')}?{DOWNLOAD}=1", quote=True)
    content = (
        f"<p><strong>{html.escape(name)}</strong> · {_human_size(record.size)}</p>"
        f'<p><a class="download" href="{href}" download>Download</a></p>'
    )
    return _page(200, "Shared file", content)


def _listing_page(entries: list[dict[str, Any]], next_cursor: str | None, token: str) -> web.Response:
    rows = "".join(
        f'<tr><td><a href="{html.escape(e["url"], quote=True)}" download>{html.escape(e["name"])}</a></td>'
        f'<td class="size">{_human_size(e["size"])}</td></tr>'
        for e in entries
    )
    content = f"<table><tr><th>File</th><th>Size</th></tr>{rows}</table>" if rows else "<p>No files.</p>"
    if next_cursor is not None:
        more = f"/s/{quote(token, safe='')}?cursor={quote(next_cursor, safe='')}"
        content += f'<p><a href="{html.escape(more, quote=True)}">More files</a></p>'
    return _page(200, "Shared files", content)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


#: A prefix link's listing pages (GET and HEAD of the link itself; an object under it takes none).
_LISTING = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    ("cursor", schemas.CURSOR_SCHEMA),
    (
        DOWNLOAD,
        {
            "type": "string",
            "description": "present (any value): the file's bytes even when the client prefers an HTML page",
        },
    ),
)


def _public_routes(path: str, get_summary: str, head_summary: str, *, lists: bool) -> tuple[Route, ...]:
    """GET, HEAD and the browser's unlock POST of a share link's path (all public).

    ``lists``: the path is the link itself, which for a prefix link answers a listing.
    """
    answer = "The object's bytes, typed as they were stored (any media type)"
    if lists:
        answer += "; a prefix link lists its objects: JSON (SharedListing) or, for a browser, an HTML page"
    return (
        Route(
            "GET",
            path,
            _public_errors(public_get),
            f"{get_summary} (public)",
            "shares",
            action="share.download",
            produces="*/*,text/html",
            answer=schemas.SharedListing if lists else None,
            success=answer,
            errors=(410, 416),
            query=_LISTING if lists else (),
        ),
        Route(
            "HEAD",
            path,
            _public_errors(public_get),
            f"{head_summary} (public)",
            "shares",
            action="share.download",
            produces="",
            errors=(410, 416),
            query=_LISTING if lists else (),
        ),
        Route(
            "POST",
            path,
            _public_errors(public_unlock),
            "Unlock a password-protected link in a browser (public)",
            "shares",
            action="share.unlock",
            produces="text/html",
            raw_body="application/x-www-form-urlencoded",
            form=schemas.UnlockForm,
            status=303,
            errors=(410,),
        ),
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        SHARES,
        create_share,
        "Create a share link (the token is shown once)",
        "shares",
        action="share.create",
        body=schemas.CreateShare,
        answer=schemas.NewShare,
        status=201,
    ),
    Route(
        "GET",
        SHARES,
        list_shares,
        "List your share links (admins: ?all=true; ?bucket=)",
        "shares",
        action="share.list",
        answer=schemas.ShareList,
        query=(("all", {"type": "boolean"}), ("bucket", schemas.BUCKET_SCHEMA)),
    ),
    Route(
        "GET",
        SHARES + "/{link_id}",
        get_share,
        "A share link (410 link_revoked once revoked: revoking is its DELETE)",
        "shares",
        action="share.read",
        answer=schemas.ShareOut,
        errors=(410,),
    ),
    Route(
        "DELETE",
        SHARES + "/{link_id}",
        revoke_share,
        "Revoke a share link",
        "shares",
        action="share.revoke",
        answer=schemas.ShareOut,
    ),
    *_public_routes(
        PUBLIC, "Download a shared object, or list a shared prefix", "Shared object metadata", lists=True
    ),
    *_public_routes(
        REST,
        "Download an object under a shared prefix",
        "Metadata of an object under a shared prefix",
        lists=False,
    ),
)
