"""The one interface every share store offers: what repair, rebalance, scrub and gc need.

A *share store* keeps opaque share files by id (``{part_id}.{index}``, see
docs/share-format.md). Four implementations honour this contract and one
contract suite (``tests/integration/test_share_store_contract.py``) runs
against each of them:

* :class:`cargohold.storage.local.LocalShareStore` — share files on a local
  disk, what a node serves;
* :class:`cargohold.storage.node_client.NodeClient` — a node over HTTP, what
  gateways and workers use;
* :class:`cargohold.testing.memory_store.MemoryShareStore` — an in-memory fake
  for unit tests;
* :class:`cargohold.testing.faults.FaultyShareStore` — wraps any store and
  injects scripted faults (errors, stalls, flipped bytes, short reads).

Besides whole-share puts, a store appends to a share at an expected offset
(``append``): what chunked uploads use to grow one part over many requests.
The expected offset is the share's length as the caller last saw it
acknowledged; any other length, or another append still running on the
share, is refused with ``ShareOffsetMismatch`` (409), so two racing writers
cannot interleave their bytes. An append is durable (fsynced) when it
returns; one that fails leaves the share at its expected offset (a crash of
the store itself may leave unacknowledged bytes behind that offset, which
no reader asks for).

Errors are domain errors: ``ShareNotFound`` (no such share), ``ShareCorrupt``
(a frame fails its checksum, or a range starts past the end),
``InsufficientStorage`` (the share does not fit), ``InvalidShareId``,
``IncompleteBody`` (a put's stream ended before ``size`` bytes), and
``NodeUnavailable`` for anything that means "this store cannot help now".
Bad arguments (a negative size or range start, a range that ends before it
starts, a listing ``limit`` outside 1..10000) raise ``InvalidArgument``.

Capacity: a store with a capacity never lets stored bytes plus the bytes
promised to puts still streaming exceed it. A put with ``size`` reserves it
up front; a put without reserves its bytes as they arrive and fails with
``InsufficientStorage`` as soon as the next chunk would not fit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from cargohold.errors import InvalidArgument

#: Listing page sizes: the default, and the most one call may ask for.
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10_000
#: Longest cursor a listing accepts (share ids are at most 160 characters).
MAX_CURSOR = 160


def check_listing(after: object, limit: object) -> tuple[str, int]:
    """The one rule for listing arguments, so every store refuses the same values."""
    if not isinstance(after, str) or len(after) > MAX_CURSOR:
        raise InvalidArgument(f"'after' must be a string of at most {MAX_CURSOR} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidArgument(f"'limit' must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
    return after, limit


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """One stored share, as a listing reports it."""

    share_id: str
    size: int
    mtime: float  # when it was last written, seconds since the epoch


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What re-reading a share's frames found (on the store itself: no share bytes travel)."""

    share_id: str
    frames: int
    corrupt_blocks: tuple[int, ...]
    bytes: int
    #: True when the share was corrupt and has been moved aside (never served again).
    quarantined: bool = False

    @property
    def ok(self) -> bool:
        return not self.corrupt_blocks


class ShareReader(Protocol):
    """One open byte range of a share, read as checksummed frames or as raw bytes."""

    #: Bytes in the opened range, and size of the whole share file (None if unknown).
    length: int | None
    total: int | None

    async def read_frame(self, expected_index: int) -> bytes:
        """The payload of the next frame, which must be block ``expected_index``'s.

        ``ShareCorrupt`` for a bad header, a frame of another block or a
        checksum mismatch: corrupt bytes are never returned as data.
        """
        ...

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` raw bytes; ``NodeUnavailable`` if the range ends or breaks first."""
        ...

    def iter_raw(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The rest of the range as raw bytes, unverified (copies verify on the target).

        Chunks are at most ``chunk_size`` bytes; a range that breaks off before
        its ``length`` raises ``NodeUnavailable``, never a silent short copy.
        """
        ...

    async def close(self) -> None: ...


class ShareStore(Protocol):
    """Put, read, verify, list and delete share files on one store."""

    #: For logs and errors: a node URL or a directory.
    name: str

    async def put(self, share_id: str, chunks: AsyncIterator[bytes], size: int | None = None) -> int:
        """Store a share from a stream; returns its size once it is durable.

        ``size`` (when known) is checked: a stream that ends short raises
        ``IncompleteBody``, one that runs long ``InvalidArgument``, and one
        that cannot fit ``InsufficientStorage`` (before any byte when
        ``size`` says so). An existing share of the id is replaced atomically
        and only by a complete new one.
        """
        ...

    async def append(self, share_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Add a stream at the end of a share that is ``offset`` bytes long; returns the new length.

        ``offset == 0`` creates the share if it is not there. A share of another
        length, or one with an append still running, raises
        ``ShareOffsetMismatch``; a missing share with ``offset > 0``
        ``ShareNotFound``; bytes beyond the capacity ``InsufficientStorage``.
        The new length is durable once this returns. If the stream or the
        write fails, the share is cut back to ``offset`` before the error is
        raised (over HTTP: as soon as the node notices the broken body).
        """
        ...

    async def open(self, share_id: str, start: int = 0, end: int | None = None) -> ShareReader:
        """Open bytes ``start``..``end`` (inclusive; None = to the end) of a share.

        An ``end`` past the share's end is cut to it. A ``start`` at or past the
        end raises ``ShareCorrupt`` (the caller's layout says the bytes must be
        there), except ``start == 0`` on an empty share: an empty range.
        The reader sees the share as it was when opened, even if it is then
        replaced or deleted.
        """
        ...

    async def verify(self, share_id: str, *, quarantine: bool = False) -> VerifyReport:
        """Re-read every frame; with ``quarantine``, move a corrupt share aside.

        A quarantined share is gone for ``open``, ``list`` and ``delete``
        (``ShareNotFound``) and no longer counts as stored. A share replaced
        by a new put while it was being verified is verified again, so the
        report (and the quarantine) is always about one and the same file.
        """
        ...

    async def list(self, after: str = "", limit: int = 1000) -> list[ShareInfo]:
        """Up to ``limit`` shares with ids greater than ``after``, in id order (a cursor).

        Id order is plain string order (ids are ASCII). A page shorter than
        ``limit`` is the last; otherwise call again with ``after`` set to the
        last id returned. Shares put or deleted meanwhile may or may not
        appear; quarantined shares never do.
        """
        ...

    async def delete(self, share_id: str) -> bool:
        """Remove a share; False if it was not there."""
        ...
