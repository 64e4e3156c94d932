"""Chunked uploads grow one part over many chunks, not one part per chunk.

Consecutive tus PATCHes and Content-Range chunks of an upload append to its
*open part*: the same share files on the same nodes grow through the nodes'
append (``ShareStore.append``: an expected offset, fsync before the answer),
and each chunk is one metadata transaction that records the part's new size.
An acknowledged offset is therefore durable on a write quorum, as it was
when every chunk was a part of its own (seven new share files, seven fsyncs
of new files and directories, an md5 pass, a new part row).

Blocks and the tail. Shares are framed per block and a reader finds block
*j* at ``j * frame size``, so only the last block of a part may be short. An
append stores whole blocks; what is left at the end of a body (the tail,
shorter than a block) follows the one rule of :meth:`PartAppender.append`:

* tus: the tail is neither stored nor acknowledged. Upload-Offset answers
  the end of the last whole block and the client sends the rest again in its
  next PATCH (tus lets a server take fewer bytes than were sent). A PATCH
  broken off by the client keeps every whole block that arrived, the same way.
* Content-Range chunks answer the exact offset they end at, so their tail is
  stored as the part's short last block, which seals the part: chunks whose
  size is a multiple of the block size share one part, others get one each.
* The chunk that reaches the upload's declared length, and a tus chunk with
  no whole block in it (a client sending tiny chunks), store their tail too,
  so an upload always moves on and always ends.

Sealing. A chunk appends to the upload's last part only while that part ends
on a block boundary, is smaller than ``append_part_limit``, has every share
stored, is exactly as this gateway process last committed it, and the
process still holds its running hash: the part's etag is an xxh3-64 over its
bytes, carried in memory from one chunk to the next (one pass beside the
data path; none of these protocols needs a per-part md5, and the 16-hex etag
tells such parts from md5-tagged ones). Otherwise the chunk opens a new part
on freshly placed nodes: after a restart, on another gateway, after a failed
append, after a share that did not answer (recorded missing: repair rebuilds
it) or once the part reached the bound.

Races. In this process an upload with an append running refuses a second
(409); across processes a node refuses an append whose offset is not the
share's length (409), so two writers never interleave bytes in one share.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import xxhash

from cargohold.config import Settings
from cargohold.domain import uploads as sm
from cargohold.domain.layout import Layout
from cargohold.domain.model import PartRecord, ShareRecord
from cargohold.domain.uploads import Upload
from cargohold.erasure.codec import codec_for
from cargohold.erasure.reader import full_frame_size
from cargohold.erasure.writer import append_blocks
from cargohold.errors import NodeUnavailable
from cargohold.service.nodes import NodeRegistry

log = logging.getLogger(__name__)


#: Open parts held per process (about 200 bytes each); past it, the oldest start a new part.
MAX_OPEN = 100_000


@dataclass(slots=True)
class _Open:
    part: PartRecord  # as last committed
    hasher: Any  # xxh3-64 over exactly the part's bytes


@dataclass(frozen=True, slots=True)
class Appended:
    """What one append stored: the part to record, and whether it already was the upload's."""

    part: PartRecord
    grown: bool
    #: Bytes this append added to the part.
    added: int
    #: Bytes of the body that were not stored (a tus tail the client sends again).
    dropped: int


class PartAppender:
    """The open parts of the uploads this process appends to."""

    def __init__(self, nodes: NodeRegistry, settings: Settings, forget: Callable[[PartRecord], None]) -> None:
        self._nodes = nodes
        self._settings = settings
        self._forget = forget
        self._open: dict[str, _Open] = {}
        self._busy: set[str] = set()
        # Running hashes of appends stored but not yet recorded, by part id.
        self._hashers: dict[str, Any] = {}

    def _appendable(self, upload: Upload, layout: Layout) -> _Open | None:
        state = self._open.get(upload.id)
        if state is None or not upload.parts:
            return None
        last = max(upload.parts, key=lambda p: p.part_number)
        part = state.part
        if (
            last != part
            or part.layout != layout.spec
            or part.block_size != layout.block_size
            or part.size % part.block_size
            or part.size >= self._settings.append_part_limit
            or any(s.state != "ok" or s.node_id is None for s in part.shares)
        ):
            return None
        return state

    async def append(
        self,
        upload: Upload,
        layout: Layout,
        body: AsyncIterator[bytes],
        *,
        offset: int,
        expected_size: int | None,
        max_size: int,
        whole_blocks: bool,
    ) -> Appended | None:
        """Store a chunk starting at ``offset``; None if nothing of it was stored.

        The caller records the returned part in the upload (``committed``) or,
        if it cannot, says so (``abandon``), so the process never appends to
        a part whose recorded size differs from its shares.
        """
        if upload.id in self._busy:
            raise sm.OffsetMismatch(f"another chunk of upload {upload.id} is being stored", offset=offset)
        self._busy.add(upload.id)
        try:
            return await self._append(upload, layout, body, offset, expected_size, max_size, whole_blocks)
        except BaseException:
            self._busy.discard(upload.id)
            raise

    async def _append(
        self,
        upload: Upload,
        layout: Layout,
        body: AsyncIterator[bytes],
        offset: int,
        expected_size: int | None,
        max_size: int,
        whole_blocks: bool,
    ) -> Appended | None:
        codec = codec_for(layout)
        state = self._appendable(upload, layout)
        self._open.pop(upload.id, None)  # back only once this append is committed
        if state is not None:
            base, hasher = state.part, state.hasher
            node_ids: list[int | None] = [s.node_id for s in sorted(base.shares, key=lambda s: s.index)]
        else:
            number = max((p.part_number for p in upload.parts), default=0) + 1
            base = PartRecord(
                id=uuid.uuid4().hex,
                part_number=number,
                offset=offset,
                size=0,
                layout=layout.spec,
                block_size=layout.block_size,
                etag="",
            )
            hasher = xxhash.xxh3_64()
            per_share = (expected_size or layout.block_size) // layout.k
            node_ids = self._nodes.place(layout.width, per_share, minimum=layout.write_quorum)
        share_offset = base.size // layout.block_size * full_frame_size(codec)
        writers = [
            functools.partial(self._nodes.client(node_id).append, f"{base.id}.{index}", share_offset)
            if node_id is not None
            else functools.partial(_no_node, f"{base.id}.{index}")
            for index, node_id in enumerate(node_ids)
        ]
        total = upload.total_size

        def keep_tail(whole: int, tail: int) -> bool:
            stored = whole * layout.block_size
            return not whole_blocks or whole == 0 or (total is not None and offset + stored + tail == total)

        try:
            result = await append_blocks(
                body,
                codec,
                writers,
                hasher=hasher,
                first_block=base.size // layout.block_size,
                keep_tail=keep_tail,
                expected_size=expected_size,
                max_size=max_size,
                depth=self._settings.blocks_in_flight,
                stall_timeout=self._settings.node_timeout,
            )
        except BaseException:
            if state is None:
                self._forget(replace(base, shares=_shares(node_ids, None)))
            raise
        for outcome in result.outcomes:
            node_id = node_ids[outcome.index]
            if not outcome.stored and node_id is not None:
                log.warning("share %s.%s not appended: %s", base.id, outcome.index, outcome.error)
                self._nodes.mark_down(node_id)
        stored = {o.index for o in result.outcomes if o.stored}
        if result.size == 0:
            if state is None:
                self._forget(replace(base, shares=_shares(node_ids, None)))
            elif len(stored) == len(node_ids):
                self._open[upload.id] = state  # nothing changed: still open
            self._busy.discard(upload.id)
            return None
        part = replace(
            base, size=base.size + result.size, etag=hasher.hexdigest(), shares=_shares(node_ids, stored)
        )
        self._hashers[part.id] = hasher
        return Appended(part, state is not None, result.size, dropped=result.received - result.size)

    def committed(self, upload_id: str, part: PartRecord) -> None:
        """The append is recorded: the part takes the next chunk, unless it is sealed."""
        hasher = self._hashers.pop(part.id, None)
        sealed = part.size % part.block_size or part.size >= self._settings.append_part_limit
        if hasher is not None and not sealed:
            if len(self._open) >= MAX_OPEN:  # uploads left unfinished: the oldest give way
                self._open.pop(next(iter(self._open)))
            self._open[upload_id] = _Open(part, hasher)
        self._busy.discard(upload_id)

    def close(self, upload_id: str) -> None:
        """The upload is completed, aborted or expired: forget its open part."""
        self._open.pop(upload_id, None)

    def abandon(self, upload_id: str, appended: Appended) -> None:
        """The append could not be recorded: the next chunk opens a new part.

        (The caller deletes a new part's shares; a part that was already
        recorded keeps them, at its recorded size.)
        """
        self._hashers.pop(appended.part.id, None)
        self._open.pop(upload_id, None)
        self._busy.discard(upload_id)


def _shares(node_ids: list[int | None], stored: set[int] | None) -> tuple[ShareRecord, ...]:
    return tuple(
        ShareRecord(index, node_id, "ok" if stored is None or index in stored else "missing")
        for index, node_id in enumerate(node_ids)
    )


async def _no_node(share_id: str, body: AsyncIterator[bytes]) -> int:
    """The writer of a share that found no writable node: fails at once, so the quorum decides."""
    raise NodeUnavailable(f"no writable node for share {share_id}")
