"""HTTP byte ranges (RFC 9110 section 14) for one representation of known size.

Pure functions; the API maps the errors to 416/400 in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cargohold.errors import InvalidRange, RangeNotSatisfiable

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve a ``Range`` header against ``size``; ``None`` means "send the whole body".

    Accepts one range: ``a-b``, ``a-`` or ``-n``. Several ranges are refused as
    malformed (we do not send multipart/byteranges). A syntactically valid
    range that does not overlap the body raises :class:`RangeNotSatisfiable`.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not match:
        raise InvalidRange(f"cannot parse Range {header!r}; expected bytes=a-b, bytes=a- or bytes=-n")
    first, last = match.group(1), match.group(2)
    if not first and not last:
        raise InvalidRange(f"cannot parse Range {header!r}")
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"suffix range {header!r} selects nothing", size=size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise InvalidRange(f"Range {header!r} ends before it starts")
    if start >= size:
        raise RangeNotSatisfiable(f"Range {header!r} starts past the end ({size} bytes)", size=size)
    return ByteRange(start, min(end, size - 1))
