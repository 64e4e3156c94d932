"""Object versions and renames: their errors and the version-listing cursor (pure).

Every object row is one version with a 32-hex ``version_id``; exactly one
version per key is the latest (perhaps a delete marker). A version listing
runs in key order and, within a key, latest first, then the other versions
newest first (a restore can make an older version the latest, so "by id"
alone would not put the latest first).

Which version is the latest can change between two pages (a restore, or
deleting the latest). The cursor therefore names both the last version
returned and the version that was listed as its key's latest, so the next
page neither repeats nor skips a version of that key, whatever flipped.

A cursor is a position, not a capability: ``<key>//<row>.<latest row>``
(no key holds ``//``, an empty segment). The native API takes any other text
as a key to resume after, as its object listing does, so every cursor the
document allows names a position; S3's version-id-marker must be one this
module made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cargohold.errors import Conflict, InvalidArgument, InvalidCursor, NoSuchKey

VERSION_ID_PATTERN = "^[0-9a-f]{32}$"
_VERSION_ID = re.compile(VERSION_ID_PATTERN.strip("^$"))
#: ``<key>//<row>.<latest row or nothing>``: the greedy key ends at the last ``//`` that digits follow.
_WITHIN_KEY = re.compile(r"(?s)(.*)//([0-9]{1,19})[.]([0-9]{1,19})?")
_ROW_MAX = 2**63 - 1


class NoSuchVersion(NoSuchKey):
    """The key has no version with this id (a subclass, so ``except NoSuchKey`` still catches it)."""

    code = "no_such_version"
    title = "Object version does not exist"


class KeyExists(Conflict):
    code = "key_exists"
    title = "The destination key exists (ask for overwrite to replace it)"


class SameObject(Conflict):
    """A rename whose destination is its source: nothing could move, so it is refused, not ignored."""

    code = "same_object"
    title = "Source and destination are the same object"


class LayoutMismatch(Conflict):
    code = "layout_mismatch"
    title = "Buckets have different layouts"


class InvalidVersionId(InvalidArgument):
    code = "invalid_version_id"
    title = "Malformed version id"


class DeleteMarkerNotRestorable(InvalidArgument):
    code = "delete_marker_not_restorable"
    title = "A delete marker cannot be restored"


def validate_version_id(version_id: str) -> str:
    """Version ids are 32 lower-case hex digits; anything else is a malformed request, not a 404."""
    if not _VERSION_ID.fullmatch(version_id):
        raise InvalidVersionId(
            f"version_id {version_id!r} must be 32 hex digits", field="version_id", version_id=version_id
        )
    return version_id


@dataclass(frozen=True, slots=True)
class VersionCursor:
    """Where a version listing continues: after row ``row_id`` of ``key``.

    ``latest_id`` is the row listed as ``key``'s latest (``None`` if none
    was). The rest of ``key`` is every other row, after ``row_id`` unless
    ``row_id`` was that latest (the latest comes first, whatever its id).
    """

    key: str
    row_id: int
    latest_id: int | None

    def encode(self) -> str:
        latest = "" if self.latest_id is None else str(self.latest_id)
        return f"{self.key}//{self.row_id}.{latest}"

    @classmethod
    def after_key(cls, key: str) -> VersionCursor:
        """After every version of ``key`` (S3's key-marker without a version-id-marker)."""
        return cls(key, 0, None)

    @classmethod
    def decode(cls, text: str) -> VersionCursor:
        """A cursor :meth:`encode` made; anything else is ``InvalidCursor``."""
        match = _WITHIN_KEY.fullmatch(text)
        if match is not None:
            key, row, latest = match.groups()
            row_id, latest_id = int(row), int(latest) if latest else None
            if row_id <= _ROW_MAX and (latest_id is None or latest_id <= _ROW_MAX):
                return cls(key, row_id, latest_id)
        raise InvalidCursor("malformed version listing cursor", field="cursor")

    @classmethod
    def resume(cls, text: str) -> VersionCursor:
        """Where a native listing resumes: the position a cursor names, else after the key ``text``."""
        try:
            return cls.decode(text)
        except InvalidCursor:
            return cls.after_key(text)
