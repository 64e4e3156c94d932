"""What a handler tells the history about its call, beyond what the route already says.

The history middleware (``api/history.py``) records every call with its
route's action, the principal, bucket and key from the path, client
address, user agent and result. Handlers add what only they know (the
version written, the size, a bucket and key given in a body, the user name
of a failed sign-in) with :func:`note`. A handler that knows the ids may
also note ``bucket_id`` and ``user_id``; otherwise they are looked up by
name when the row is stored.

The error code of a failed call is remembered by
:func:`error_code_middleware`, which sits just outside authentication:
both the native API (problem+json) and tus (plain text) render errors
further out, and the tus rendering keeps no code, so this is the one place
that sees every domain error, including authentication's 401s.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.errors import CargoholdError
from cargohold.problems import Handler, http_error_code

AUDIT = "audit"
ERROR_CODE = "audit_error_code"


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to this call's history row: bucket, key, version_id, size, user_name, detail."""
    request.setdefault(AUDIT, {}).update({k: v for k, v in fields.items() if v is not None})


def noted(request: web.Request) -> dict[str, Any]:
    return dict(request.get(AUDIT, {}))


def error_code(request: web.Request) -> str | None:
    """The stable code of the error this call failed with, if one was raised inside."""
    code = request.get(ERROR_CODE)
    return code if isinstance(code, str) else None


@web.middleware
async def error_code_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Remember the code of an error on its way out; rendering it is someone else's job."""
    try:
        return await handler(request)
    except CargoholdError as error:
        request[ERROR_CODE] = error.code
        raise
    except web.HTTPException as exc:
        if exc.status >= 400:
            request[ERROR_CODE] = http_error_code(exc.status)
        raise
