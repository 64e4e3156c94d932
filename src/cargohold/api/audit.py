"""What a handler tells the history about its call, beyond what the route already says.

The history middleware records every call with its route's action, the
principal, bucket and key from the path, client address, user agent and
result. Handlers add what only they know (the version written, the size,
a bucket and key given in a body, the user name of a failed sign-in) with
:func:`note`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

AUDIT = "audit"


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to this call's history row: bucket, key, version_id, size, user_name, detail."""
    request.setdefault(AUDIT, {}).update({k: v for k, v in fields.items() if v is not None})


def noted(request: web.Request) -> dict[str, Any]:
    return dict(request.get(AUDIT, {}))
