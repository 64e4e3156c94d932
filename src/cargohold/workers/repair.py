"""Repair: rebuild a part's missing or corrupt shares from any k good ones, onto other nodes.

A part is read block by block from k readable shares (data shares first,
parity where needed, a failing source replaced on the fly), each block is
decoded and re-encoded, and only the shares being rebuilt are framed and
streamed to their new nodes — chosen by placement away from the part's other
nodes, keeping its zone spread. Once the new shares are durable one metadata
transaction points the part at them, as a compare-and-set on where each share
was: if a move or another repair changed it meanwhile, the new copy is
deleted and nothing else changes. The stale copy is deleted last, when its
node answers.

Which shares need rebuilding: those marked missing (a degraded write, a
corrupt or vanished share found by a read or by scrub), those with no node,
and those on nodes that are lost or retired. A share on a node that is merely
down is left alone: the node may come back, and only once it has been down
for ``node_lost_after`` is it declared lost and its shares rebuilt.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.concurrency import run_cpu
from cargohold.config import Settings
from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.layout import Layout
from cargohold.domain.model import NODE_LOST, NODE_RETIRED, PartRecord, ShareRecord
from cargohold.erasure.codec import Codec, codec_for
from cargohold.erasure.fanout import Fanout
from cargohold.erasure.framing import frame_header
from cargohold.erasure.reader import read_part_frames
from cargohold.errors import CargoholdError, InsufficientNodes, ReadUnavailable
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService, share_candidates, share_opener
from cargohold.workers.jobs import JobContext
from cargohold.workers.limits import Bandwidth

log = logging.getLogger(__name__)


class Repairer:
    def __init__(
        self,
        db: Database,
        nodes: NodeRegistry,
        objects: ObjectService,
        settings: Settings,
        bandwidth: Bandwidth,
    ) -> None:
        self._db = db
        self._nodes = nodes
        self._objects = objects
        self._settings = settings
        self.bandwidth = bandwidth

    async def handle(self, ctx: JobContext) -> None:
        """The ``repair_part`` job: rebuild what the part lacks; retried while it cannot finish."""
        await self.repair(ctx.payload["part_id"], ctx)

    def needs_rebuild(self, share: ShareRecord) -> bool:
        if share.state != "ok" or share.node_id is None:
            return True
        node = self._nodes.get(share.node_id)
        return node is None or node.state in (NODE_LOST, NODE_RETIRED)

    async def repair(self, part_id: str, ctx: JobContext | None = None, force: Collection[int] = ()) -> int:
        """Rebuild the part's bad shares (and those in ``force``); return how many were rebuilt.

        Raises (so the job is retried later) when fewer than k shares can be
        read, or when not every bad share found a node.
        """
        # Node states come from the store: an admin may have declared a node
        # lost a moment ago, on another process, and a cached view would miss it.
        await self._nodes.load()
        async with self._db.read() as conn:
            part = await repo.get_part(conn, part_id)
        if part is None:
            return 0  # deleted meanwhile: nothing left to protect
        bad = [s for s in part.shares if self.needs_rebuild(s) or s.index in force]
        if not bad:
            return 0
        layout = Layout.parse(part.layout, part.block_size)
        if layout.m == 0:
            raise ReadUnavailable(f"part {part.id} ({part.layout}) has no parity to rebuild from")
        bad_indexes = {s.index for s in bad}
        keep = [s for s in part.shares if s.index not in bad_indexes]
        zones: dict[str, int] = {}
        for share in keep:
            zone = self._nodes.zone_of(share.node_id)
            if zone is not None:
                zones[zone] = zones.get(zone, 0) + 1
        per_share = -(-part.size // layout.k)
        targets = self._nodes.place_more(
            len(bad),
            per_share,
            exclude={s.node_id for s in keep if s.node_id is not None},
            zones_used=zones,
        )
        if not targets:
            raise InsufficientNodes(f"no writable node can take a share of part {part.id}")
        rebuild = list(zip(bad, targets, strict=False))
        if ctx is not None:
            ctx.total_bytes = per_share * len(rebuild)
        stored = await self._rebuild(part, layout, bad_indexes, rebuild, ctx)
        switched = await self._switch(part, stored)
        if len(targets) < len(bad):
            raise InsufficientNodes(
                f"part {part.id}: rebuilt {len(switched)} of {len(bad)} shares, too few writable nodes"
            )
        return len(switched)

    async def _rebuild(
        self,
        part: PartRecord,
        layout: Layout,
        bad_indexes: set[int],
        rebuild: list[tuple[ShareRecord, int]],
        ctx: JobContext | None,
    ) -> list[tuple[ShareRecord, int]]:
        """Stream the rebuilt shares to their targets; return those that became durable."""
        codec = codec_for(layout)
        candidates = [i for i in share_candidates(part, self._nodes) if i not in bad_indexes]
        writers = [
            functools.partial(self._nodes.client(target).put, f"{part.id}.{share.index}")
            for share, target in rebuild
        ]
        indexes = [share.index for share, _ in rebuild]
        fanout = Fanout(writers, 1, self._settings.blocks_in_flight, self._settings.node_timeout)
        try:
            async for block, frames in read_part_frames(
                codec,
                part.size,
                candidates,
                share_opener(part, self._nodes),
                functools.partial(self._objects.report_bad_share, part),
                self._settings.node_timeout,
            ):
                block_len = layout.block_length(part.size, block)
                pieces = await run_cpu(rebuild_frames, codec, frames, block_len, block, indexes)
                written = sum(len(header) + len(payload) for header, payload in pieces)
                await self.bandwidth.take(written)
                await fanout.send(pieces)
                if ctx is not None:
                    await ctx.progress(written)
            outcomes = await fanout.finish()
        except BaseException:
            await fanout.abort()
            await self._forget([f"{part.id}.{s.index}" for s, _ in rebuild], [t for _, t in rebuild])
            raise
        stored = []
        for (share, target), outcome in zip(rebuild, outcomes, strict=True):
            if outcome.stored:
                stored.append((share, target))
            else:
                log.warning(
                    "rebuilt share %s.%s not stored on node %s: %s",
                    part.id,
                    share.index,
                    target,
                    outcome.error,
                )
        return stored

    async def _switch(
        self, part: PartRecord, stored: list[tuple[ShareRecord, int]]
    ) -> list[tuple[ShareRecord, int]]:
        """Point the part at the new shares in one transaction; clean up what lost a race."""
        switched: list[bool] = await self._db.write(
            functools.partial(_switch_shares, part_id=part.id, stored=stored)
        )
        won = [pair for pair, ok in zip(stored, switched, strict=True) if ok]
        lost = [pair for pair, ok in zip(stored, switched, strict=True) if not ok]
        await self._forget([f"{part.id}.{s.index}" for s, _ in lost], [t for _, t in lost])
        for share, target in won:
            if share.node_id is not None and share.node_id != target:
                await self._forget([f"{part.id}.{share.index}"], [share.node_id])
        if won:
            log.info("part %s: rebuilt shares %s", part.id, [s.index for s, _ in won])
        return won

    async def _forget(self, share_ids: list[str], node_ids: list[int]) -> None:
        """Best-effort deletes; a copy left behind is an orphan the sweep removes."""
        for share_id, node_id in zip(share_ids, node_ids, strict=True):
            if self._nodes.get(node_id) is None:
                continue
            try:
                await self._nodes.client(node_id).delete(share_id)
            except (CargoholdError, OSError) as exc:
                log.info("left share %s on node %s for the orphan sweep: %s", share_id, node_id, exc)


def rebuild_frames(
    codec: Codec, frames: dict[int, bytes], block_len: int, block: int, indexes: list[int]
) -> list[tuple[bytes, bytes]]:
    """The framed shares ``indexes`` of one block, rebuilt from any k of its shares (CPU work)."""
    data = codec.decode(frames, block_len)
    shares = codec.encode(data)
    return [(frame_header(block, shares[i]), shares[i]) for i in indexes]


async def _switch_shares(
    conn: AsyncConnection, *, part_id: str, stored: list[tuple[ShareRecord, int]]
) -> list[bool]:
    """Point the part at its rebuilt shares; a ``repair.finished`` event says which, when any did."""
    switched = [
        await repo.set_share(conn, part_id, share.index, target, "ok", expected_node=share.node_id)
        for share, target in stored
    ]
    rebuilt = [(share.index, target) for (share, target), ok in zip(stored, switched, strict=True) if ok]
    if rebuilt:
        detail = {"part_id": part_id, "shares": [i for i, _ in rebuilt], "nodes": [n for _, n in rebuilt]}
        await repo.events.append(conn, EventDraft(EventType.REPAIR_FINISHED, None, detail=detail))
    return switched
