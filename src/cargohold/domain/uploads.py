"""The upload state machine, shared by upload sessions, Content-Range chunks and tus.

Pure: records and rules, no I/O. The service layer loads an :class:`Upload`,
asks these functions what is allowed, and stores the result.

Statuses::

    PENDING --first byte--> LOADING --complete--> UPLOADED
       |                       |
       +------abort/expiry-----+--> DELETED
                               +--> FAILED   (completion found the data unusable)

Two ways to send bytes, one state:

* *parts* (sessions, S3 multipart): part n (1..10000) arrives in any order and
  may be sent again; completion requires parts 1..N with no gap.
* *appends* (Content-Range chunks, tus PATCH): each append starts exactly at
  the current offset and becomes the next part; completion requires the
  offset to reach the declared total size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cargohold.domain.model import PartRecord
from cargohold.errors import CargoholdError, Conflict, InvalidArgument

PENDING = "PENDING"
LOADING = "LOADING"
UPLOADED = "UPLOADED"
FAILED = "FAILED"
DELETED = "DELETED"
OPEN_STATES = frozenset({PENDING, LOADING})
FINAL_STATES = frozenset({UPLOADED, FAILED, DELETED})

MAX_PART_NUMBER = 10_000
#: S3's smallest part but the last (5 MiB); uploads of protocol "s3" keep S3's rules.
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3 = "s3"
#: The upload behind a background import: its parts are the import's durable progress. The
#: import owns it, so the upload APIs (sessions, tus, S3) neither list nor show it.
IMPORT = "import"


class UploadNotOpen(Conflict):
    code = "upload_not_open"
    title = "Upload is no longer open"


class UploadExpired(CargoholdError):
    code = "upload_expired"
    status = 410
    title = "Upload expired"


class OffsetMismatch(Conflict):
    code = "offset_mismatch"
    title = "Chunk does not start at the upload's current offset"


class InvalidPart(InvalidArgument):
    code = "invalid_part"
    title = "Invalid part"


class InvalidPartOrder(InvalidPart):
    code = "invalid_part_order"
    title = "The list of parts was not in ascending order"


class EntityTooSmall(InvalidArgument):
    code = "entity_too_small"
    title = "A part other than the last is smaller than the minimum part size"


class MissingParts(Conflict):
    """Completion named, or needs, a part the upload does not hold: the same call succeeds once
    the part is sent, so the upload's state refuses it (409), not the request's form."""

    code = "missing_parts"
    title = "Parts missing or not contiguous"


class PartMismatch(Conflict):
    """Completion listed a part with another md5 than the part the upload holds."""

    code = "part_mismatch"
    title = "A listed part differs from the part the upload holds"


class DigestMismatch(Conflict):
    """The assembled upload's md5 or sha256 is not the one the client gave: the upload stays open
    for its parts to be fixed, after which the same completion succeeds."""

    code = "upload_digest_mismatch"
    title = "The assembled upload does not have the digest given"


class SizeMismatch(Conflict):
    """Sizes that disagree with the size the upload declared: a chunk past it, parts that do not
    add up to it, another length for it. The request may be fine; the upload's state refuses it."""

    code = "size_mismatch"
    title = "Upload size does not match"


class PartTooLarge(CargoholdError):
    code = "part_too_large"
    status = 413
    title = "Part too large"


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    bucket_id: int
    bucket: str
    key: str
    status: str
    protocol: str  # "session" | "chunked" | "tus" | "s3" | "import"
    content_type: str
    total_size: int | None
    part_size: int | None
    expected_md5: str | None
    expected_sha256: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    concat: str | None = None  # tus: "partial" | "final"
    error: str | None = None
    parts: tuple[PartRecord, ...] = ()
    #: Headers the completed object is stored with (see ``ObjectRecord.headers``).
    headers: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # name of the user who started it

    @property
    def received(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def offset(self) -> int:
        """Bytes received contiguously from the start (what an append must start at)."""
        return contiguous_size(self.parts)


def percentage_of(received: int, total: int | None) -> float | None:
    """Progress in percent with two decimals; None while the total is unknown."""
    if total is None:
        return None
    if total == 0:
        return 100.0
    return round(100.0 * min(received, total) / total, 2)


def contiguous_size(parts: Sequence[PartRecord]) -> int:
    """Size of parts 1..n without a gap, in part-number order."""
    size = 0
    for expected, part in enumerate(sorted(parts, key=lambda p: p.part_number), start=1):
        if part.part_number != expected:
            break
        size += part.size
    return size


def check_open(upload: Upload, now: datetime) -> None:
    if upload.status not in OPEN_STATES:
        raise UploadNotOpen(f"upload {upload.id} is {upload.status}", upload_status=upload.status)
    if upload.expires_at <= now:
        raise UploadExpired(f"upload {upload.id} expired at {upload.expires_at.isoformat()}")


def check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidPart(f"part numbers run from 1 to {MAX_PART_NUMBER}, got {number}")


def check_append(upload: Upload, offset: int, length: int | None) -> None:
    """An append must start at the current offset and stay within the declared size."""
    if offset != upload.offset:
        raise OffsetMismatch(
            f"chunk starts at {offset}, the upload is at {upload.offset}", offset=upload.offset
        )
    if upload.total_size is not None and length is not None and offset + length > upload.total_size:
        raise SizeMismatch(
            f"chunk ends at {offset + length}, past the declared size {upload.total_size}",
            offset=upload.offset,
        )


def completion_order(
    upload: Upload, requested: Sequence[tuple[int, str | None]] | None, *, min_part_size: int = 0
) -> list[PartRecord]:
    """The parts that make the object, in order; checks they are contiguous and match.

    ``requested`` is the client's ordered list of (part number, md5 or None);
    without it every stored part is used. Raises MissingParts, PartMismatch or
    InvalidPartOrder. S3 uploads follow S3's rules instead of contiguity: the
    listed numbers may have gaps, and every part but the last must hold at
    least ``min_part_size`` bytes (EntityTooSmall).
    """
    by_number = {p.part_number: p for p in upload.parts}
    if requested is None:
        numbers = sorted(by_number)
    else:
        numbers = [n for n, _ in requested]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder("the part list must be in ascending order without repeats")
        for number, md5 in requested:
            part = by_number.get(number)
            if part is None:
                raise MissingParts(f"part {number} was never uploaded", part=number)
            if md5 is not None and part.etag != md5.strip('"').lower():
                raise PartMismatch(f"part {number} has md5 {part.etag}, the list says {md5}", part=number)
    if upload.protocol == S3:
        if not numbers:
            raise MissingParts("an upload needs at least one part")
        small = next((n for n in numbers[:-1] if by_number[n].size < min_part_size), None)
        if small is not None:
            raise EntityTooSmall(
                f"part {small} holds {by_number[small].size} bytes; every part but the last needs "
                f"at least {min_part_size}",
                part=small,
            )
    elif numbers != list(range(1, len(numbers) + 1)):
        gap = next((i for i, n in enumerate(numbers, start=1) if n != i), len(numbers) + 1)
        raise MissingParts(f"part {gap} is missing: parts must run 1..N without a gap", part=gap)
    ordered = [by_number[n] for n in numbers]
    size = sum(p.size for p in ordered)
    if upload.total_size is not None and size != upload.total_size:
        raise SizeMismatch(f"parts hold {size} bytes, the upload declared {upload.total_size}", received=size)
    return ordered
