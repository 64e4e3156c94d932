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
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from cargohold.errors import Conflict, InvalidArgument, NoSuchKey

_VERSION_ID = re.compile(r"[0-9a-f]{32}")


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


class DeleteMarkerNotRestorable(InvalidArgument):
    code = "delete_marker_not_restorable"
    title = "A delete marker cannot be restored"


def validate_version_id(version_id: str) -> str:
    """Version ids are 32 lower-case hex digits; anything else is a malformed request, not a 404."""
    if not _VERSION_ID.fullmatch(version_id):
        raise InvalidArgument(
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
        raw = json.dumps([self.key, self.row_id, self.latest_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> VersionCursor:
        """Parse a cursor from a client; anything not made by :meth:`encode` is ``InvalidArgument``."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key, row_id, latest_id = json.loads(raw)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument("malformed version listing cursor", field="cursor") from exc
        if (
            not isinstance(key, str)
            or type(row_id) is not int
            or not (latest_id is None or type(latest_id) is int)
        ):
            raise InvalidArgument("malformed version listing cursor", field="cursor")
        return cls(key, row_id, latest_id)
