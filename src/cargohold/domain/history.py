"""The action history as plain records: one event per API call, and the questions asked of them.

An event says who (user id and name; either may be missing for a failed
sign-in or an anonymous share-link download), what (a dotted
``resource.verb`` action such as ``object.read``), on what (bucket, key,
version, size), from where (client address, user agent), when, and how it
ended: ``result`` is ``"ok"`` or the error's stable code, ``status`` the
HTTP status sent.

Queries walk the history newest first by id. The cursor is the id of the
last event of a page, in decimal (as the jobs listing's): clients treat it as
opaque, and the API document can say exactly which strings are cursors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cargohold.errors import InvalidArgument

OK = "ok"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: "object" (every object.* action) or "object.read" (exactly that action).
_DIGITS = re.compile(r"[0-9]{1,18}")
ACTION_PATTERN = "^[a-z][a-z_]*([.][a-z][a-z_]*)?$"
_ACTION = re.compile(ACTION_PATTERN)
#: A user name, as accounts allow them.
_USER = re.compile("[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
#: Every string ``encode_cursor`` can hand out, and nothing else.
CURSOR_PATTERN = "^[1-9][0-9]{0,17}$"
#: The longest bucket name and key prefix a filter may hold (no longer name or key exists).
MAX_BUCKET_FILTER = 63
MAX_ACTION = 64
MAX_PREFIX_FILTER = 1024


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    action: str
    at: datetime
    status: int
    result: str  # OK or the error code
    user_id: int | None = None
    user_name: str | None = None
    bucket_id: int | None = None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    size: int | None = None
    client: str | None = None
    user_agent: str | None = None
    detail: dict[str, Any] | None = None
    id: int | None = None  # set once stored


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Filters of a history search; every one that is set must match."""

    user: str | None = None  # the actor's name
    bucket: str | None = None
    prefix: str | None = None  # of the key
    action: str | None = None  # exact ("object.read") or a resource ("object" = "object.*")
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    limit: int = DEFAULT_LIMIT
    before_id: int | None = None  # from the cursor: only events older than this one

    @property
    def action_is_prefix(self) -> bool:
        return self.action is not None and "." not in self.action


@dataclass(frozen=True, slots=True)
class HistoryPage:
    events: list[HistoryEvent]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return str(last_id)


def decode_cursor(cursor: str) -> int:
    """The id a cursor continues after; ``InvalidArgument`` for anything we did not hand out."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidArgument("cursor is not one this server handed out", field="cursor")
    return int(cursor)


def parse_time(text: str, field: str) -> datetime:
    """ISO 8601, a date or a time; a time without a zone is taken as UTC (the history's clock)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(
            f"{field} must be an ISO 8601 time such as 2026-01-31T12:00:00Z", field=field
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not _DIGITS.fullmatch(text.strip()) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return int(text)


def parse_query(params: Mapping[str, str]) -> HistoryQuery:
    """A search from URL query parameters; ``InvalidArgument`` (400) names the first bad one."""

    def text(name: str, longest: int) -> str | None:
        value = params.get(name)
        if value is not None and len(value) > longest:
            raise InvalidArgument(f"{name} may hold at most {longest} characters", field=name)
        return value if value else None

    # A filter that is given is judged, empty or not: "?user=" names no user, it does not
    # mean "any user" (the document says what each may hold). Only bucket and prefix may be
    # empty, and then filter nothing, as an empty prefix matches every key.
    user = params.get("user")
    if user is not None and not _USER.fullmatch(user):
        raise InvalidArgument("user must be a user name of 1-64 characters", field="user")
    action = params.get("action")
    if action is not None and (len(action) > MAX_ACTION or not _ACTION.fullmatch(action)):
        raise InvalidArgument(
            "action must be a resource such as 'object' or an action such as 'object.read'", field="action"
        )
    since, until = params.get("since"), params.get("until")
    cursor = params.get("cursor")
    query = HistoryQuery(
        user=user,
        bucket=text("bucket", MAX_BUCKET_FILTER),
        prefix=text("prefix", MAX_PREFIX_FILTER),
        action=action,
        since=parse_time(since, "since") if since is not None else None,
        until=parse_time(until, "until") if until is not None else None,
        limit=parse_limit(params.get("limit")),
        before_id=decode_cursor(cursor) if cursor is not None else None,
    )
    return query  # since at or after until is an empty range: no events, not an error
