"""Conditional requests (RFC 9110 section 13) on an object's ETag and modification time (pure).

Reads: ``If-Match`` and ``If-Unmodified-Since`` fail with 412
(:class:`PreconditionFailed`); ``If-None-Match`` and ``If-Modified-Since``
turn the answer into 304 Not Modified. They are evaluated in the RFC's
order, so an ``If-Match`` that holds overrides ``If-Unmodified-Since`` and
an ``If-None-Match`` overrides ``If-Modified-Since`` (S3 does the same).
A copy's source conditions (``x-amz-copy-source-if-*``) follow the same
rules, except that where a read would answer 304 a copy fails with 412.

Writes: ``If-None-Match: *`` (create only) and ``If-Match: "etag"`` (replace
only that version) are checked against the key's latest version inside the
transaction that commits the write (see ``repositories.put_object``).
A date that cannot be parsed is ignored, as the RFC asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from cargohold.errors import CargoholdError, InvalidArgument, NoSuchKey


class PreconditionFailed(CargoholdError):
    code = "precondition_failed"
    status = 412
    title = "At least one of the preconditions you specified did not hold"


class NotModified(CargoholdError):
    """Not a failure: the client's copy is current (304). Raised where a surface answers by error."""

    code = "not_modified"
    status = 304
    title = "Not modified"


def parse_etags(header: str) -> set[str]:
    """The entity tags of an ``If-Match``/``If-None-Match`` list, unquoted ("*" stays "*")."""
    return {t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()}


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date, or None when absent or unparseable (the condition is then ignored)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _matches(header: str, etag: str) -> bool:
    tags = parse_etags(header)
    return "*" in tags or etag in tags


@dataclass(frozen=True, slots=True)
class ReadConditions:
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], prefix: str = "") -> ReadConditions:
        """From ``If-*`` headers, or with ``prefix="x-amz-copy-source-"`` from a copy's source conditions."""
        return cls(
            headers.get(prefix + "If-Match"),
            headers.get(prefix + "If-None-Match"),
            parse_http_date(headers.get(prefix + "If-Modified-Since")),
            parse_http_date(headers.get(prefix + "If-Unmodified-Since")),
        )

    def evaluate(self, etag: str, last_modified: datetime, *, copy: bool = False) -> bool:
        """True when the object is to be sent, False for 304; ``PreconditionFailed`` for 412.

        ``copy``: the conditions name a copy's source, which is copied or
        refused (412), never answered with 304.
        """
        modified = last_modified.replace(microsecond=0)  # HTTP dates have whole seconds
        if self.if_match is not None:
            if not _matches(self.if_match, etag):
                raise PreconditionFailed("If-Match does not match the object's ETag", etag=etag)
        elif self.if_unmodified_since is not None and modified > self.if_unmodified_since:
            raise PreconditionFailed("the object was modified after If-Unmodified-Since")
        fresh = True
        if self.if_none_match is not None:
            fresh = not _matches(self.if_none_match, etag)
        elif self.if_modified_since is not None:
            fresh = modified > self.if_modified_since
        if not fresh and copy:
            raise PreconditionFailed("the copy source's conditions do not hold", etag=etag)
        return fresh


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """``If-None-Match: *`` (only if no object) and/or ``If-Match: "etag"`` (only over that one)."""

    if_match: str | None = None
    if_none_match: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> WriteCondition | None:
        if_match, if_none_match = headers.get("If-Match"), headers.get("If-None-Match")
        if if_match is None and if_none_match is None:
            return None
        if if_none_match is not None and if_none_match.strip() != "*":
            raise InvalidArgument("a write accepts only If-None-Match: *", header="If-None-Match")
        return cls(if_match, if_none_match)

    def check(self, current_etag: str | None, key: str = "") -> None:
        """Raise unless the write may replace a latest version with ``current_etag`` (None: no object)."""
        if self.if_none_match is not None and current_etag is not None:
            raise PreconditionFailed(f"object {key!r} exists and If-None-Match is *", key=key)
        if self.if_match is not None:
            if current_etag is None:
                raise NoSuchKey(f"no object {key!r} for If-Match to match", key=key)
            if not _matches(self.if_match, current_etag):
                raise PreconditionFailed(f"If-Match does not match the ETag of {key!r}", key=key)
