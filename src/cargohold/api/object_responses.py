"""HTTP responses that carry an object's bytes, for every route that serves objects.

One function answers GET and HEAD alike: validators (ETag, Last-Modified),
``If-None-Match`` → 304, ``Range`` → 206 or 416, small inline objects in one
piece, large ones streamed from the nodes with bounded memory.

Errors are decided before the first byte where they can be: the first block
is fetched before the status line goes out, so a missing object or an
unreadable first block is an ordinary problem answer. A failure after that
(a later block that cannot be decoded) aborts the connection through
:mod:`cargohold.aborts`: the client sees a body shorter than its
Content-Length at once, and never bytes that are not the object's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import format_datetime
from urllib.parse import quote

from aiohttp import web

from cargohold.aborts import begin
from cargohold.domain.conditions import ReadConditions
from cargohold.domain.model import ObjectRecord
from cargohold.domain.ranges import ByteRange, parse_range
from cargohold.service.objects import Chunk, ObjectService

#: Called once the answer is known to carry a body (GET, 200 or 206), before any byte is read.
Admit = Callable[[ByteRange | None], Awaitable[None]]


def object_headers(record: ObjectRecord) -> dict[str, str]:
    return {
        "ETag": f'"{record.etag}"',
        "Last-Modified": format_datetime(record.created_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Type": record.content_type,
    }


def not_modified(request: web.Request, record: ObjectRecord) -> bool:
    """True for 304; ``PreconditionFailed`` (412) when If-Match or If-Unmodified-Since fails."""
    conditions = ReadConditions.from_headers(request.headers)
    return not conditions.evaluate(record.etag, record.created_at)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="…"; filename*=UTF-8''…`` (RFC 6266 with RFC 5987 encoding).

    The plain ``filename`` is an ASCII stand-in for old clients: anything that
    is not printable ASCII, or would need escaping inside quotes, becomes '_'.
    """
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    encoded = quote(filename, safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def stream_object_response(
    request: web.Request,
    objects: ObjectService,
    record: ObjectRecord,
    headers: dict[str, str] | None = None,
    *,
    admit: Admit | None = None,
    byte_range: ByteRange | None = None,
) -> web.StreamResponse:
    """Answer a GET or HEAD of ``record``; ``headers`` are added (e.g. Content-Disposition).

    ``admit`` lets a caller refuse or count a download once the range is
    known and before anything is fetched (share links count downloads that
    start at byte 0). It is not called for HEAD, 304 or 416. ``byte_range``
    is served instead of the request's ``Range`` (S3's ``partNumber``).
    """
    out = {**object_headers(record), **(headers or {})}
    if not_modified(request, record):
        return web.Response(status=304, headers=out)
    if byte_range is None:
        byte_range = parse_range(request.headers.get("Range"), record.size)
    status, length = 200, record.size
    if byte_range is not None:
        status, length = 206, byte_range.length
        out["Content-Range"] = byte_range.content_range(record.size)
    if request.method == "HEAD":
        out["Content-Length"] = str(length)
        return web.Response(status=status, headers=out)
    if record.inline_data is not None:
        if admit is not None:
            await admit(byte_range)
        data = record.inline_data
        body = data if byte_range is None else data[byte_range.start : byte_range.end + 1]
        return web.Response(status=status, body=body, headers=out)
    if objects.debug:
        plan = objects.zone_plan(record, byte_range)
        out["X-Cargohold-Zone-Bytes"] = ", ".join(f"{zone}={n}" for zone, n in sorted(plan.items()))
    chunks = objects.stream(record, byte_range)
    try:
        first = await anext(chunks, None)
        if admit is not None:  # after the first block: a failed read is not a download
            await admit(byte_range)
    except BaseException:
        await _close(chunks)
        raise
    response = web.StreamResponse(status=status, headers=out)
    response.content_length = length
    try:
        await begin(request, response)
        if first is not None:
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
    finally:  # a client that went away leaves the read suspended mid-part
        await _close(chunks)
    await response.write_eof()
    return response


async def _close(chunks: AsyncIterator[Chunk]) -> None:
    """Stop a read early, so its node connections are released now rather than at collection."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
