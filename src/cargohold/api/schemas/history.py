"""The action history's answers."""

from __future__ import annotations

from typing import Any

from cargohold.api.schemas.common import Answer, Stamp


class EventOut(Answer):
    id: int
    at: Stamp
    user: str | None
    action: str
    bucket: str | None
    key: str | None
    version_id: str | None
    size: int | None
    client: str | None
    user_agent: str | None
    result: str
    status: int | None
    detail: Any = None


class History(Answer):
    events: list[EventOut]
    next_cursor: str | None
