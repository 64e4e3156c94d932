"""Events: what changed, as users and their systems are told about it.

Every change a user may care about is appended to the ``events`` table (the
outbox) in the transaction that makes the change, as an :class:`EventDraft`.
A change that rolls back therefore leaves no event, and a committed change
always has one. The per-user stream (``GET /api/v1/events``) and the webhook
deliveries both read that one log, in id order.

Event types are dotted ``resource.verb`` names. Filters name a type exactly
(``upload.completed``), a family (``upload.*``), or everything (``*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from cargohold.errors import InvalidEventType


class EventType(StrEnum):
    UPLOAD_CREATED = "upload.created"
    UPLOAD_PROGRESS = "upload.progress"
    UPLOAD_COMPLETED = "upload.completed"
    UPLOAD_FAILED = "upload.failed"
    UPLOAD_ABORTED = "upload.aborted"
    OBJECT_CREATED = "object.created"
    OBJECT_DELETED = "object.deleted"
    OBJECT_RENAMED = "object.renamed"
    OBJECT_RESTORED = "object.restored"
    SHARE_CREATED = "share.created"
    SHARE_USED = "share.used"
    SHARE_EXHAUSTED = "share.exhausted"
    IMPORT_CREATED = "import.created"
    IMPORT_PROGRESS = "import.progress"
    IMPORT_COMPLETED = "import.completed"
    IMPORT_FAILED = "import.failed"
    IMPORT_CANCELLED = "import.cancelled"
    NODE_DOWN = "node.down"
    NODE_UP = "node.up"
    NODE_LOST = "node.lost"
    REPAIR_FINISHED = "repair.finished"
    WEBHOOK_DISABLED = "webhook.disabled"


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event about to be appended: everything but its id and time, which the store assigns.

    ``actor_id`` is the user who made the change (None for the cluster's own
    doings: node health, repair). ``bucket`` is the bucket's name; give
    ``bucket_id`` too when it is at hand, else the store looks it up in the
    same transaction (visibility follows the bucket's owner and grants).
    ``detail`` is a small JSON document particular to the type.
    """

    type: EventType
    actor_id: int | None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    size: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    bucket_id: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event. ``id`` ascends in commit order: a reader that saw id N has seen all below."""

    id: int
    at: datetime
    type: str
    actor_id: int | None
    bucket_id: int | None
    bucket: str | None
    key: str | None
    version_id: str | None
    size: int | None
    detail: Mapping[str, Any]

    def document(self) -> dict[str, Any]:
        """The event as JSON: the stream's ``data`` and a webhook body's ``data``."""
        return {
            "id": self.id,
            "time": self.at.isoformat().replace("+00:00", "Z"),
            "type": self.type,
            "actor_id": self.actor_id,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "size": self.size,
            "detail": dict(self.detail),
        }


#: A type filter: "*", a family "upload.*", or one type "upload.completed".
#: Spelt out from the known types, so the document refuses what the server refuses.
_FAMILIES = tuple(dict.fromkeys(t.value.split(".", 1)[0] for t in EventType))
TYPE_FILTER_PATTERN = (
    "^(\\*|(" + "|".join(_FAMILIES) + ")\\.\\*|" + "|".join(re.escape(t.value) for t in EventType) + ")$"
)
_TYPE_FILTER = re.compile(TYPE_FILTER_PATTERN)
MAX_TYPE_FILTERS = 32


def parse_type_filters(values: Iterable[str]) -> tuple[str, ...]:
    """Validated type filters (empty: every type). Unknown types and families are refused,
    so a typo is an error rather than a subscription that never fires."""
    filters = tuple(dict.fromkeys(values))
    if len(filters) > MAX_TYPE_FILTERS:
        raise InvalidEventType(f"at most {MAX_TYPE_FILTERS} event type filters")
    for value in filters:  # the pattern names every known type and family, nothing else
        if not _TYPE_FILTER.fullmatch(value):
            raise InvalidEventType(f"unknown event type {value!r}: give '*', a family ('upload.*') or a type")
    return () if "*" in filters else filters


def type_matches(filters: tuple[str, ...], event_type: str) -> bool:
    """Whether an event of ``event_type`` passes ``filters`` (as :func:`parse_type_filters` made them)."""
    if not filters:
        return True
    family = event_type.split(".", 1)[0]
    return any(f == event_type or (f.endswith(".*") and f[:-2] == family) for f in filters)
