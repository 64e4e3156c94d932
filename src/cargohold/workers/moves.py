"""Moving one share between nodes: copy, verify on the target, switch placement, delete the source.

Rebalance and drain both move shares this way. The bytes travel node to
node through the worker as they are stored (the share file is copied, not
re-encoded), the target re-reads every frame's checksum before anything
changes, and the switch is a compare-and-set on the share's node, so a read
that raced the move finds the share at one place or the other and a repair
that raced it wins cleanly. Reads that still go to the source after the
delete fall back to parity for that one share.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from cargohold.errors import CargoholdError, ShareCorrupt
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext
from cargohold.workers.limits import Bandwidth

log = logging.getLogger(__name__)


class ShareMover:
    def __init__(self, db: Database, nodes: NodeRegistry, bandwidth: Bandwidth) -> None:
        self._db = db
        self._nodes = nodes
        self.bandwidth = bandwidth

    async def move(
        self, part_id: str, index: int, source: int, target: int, ctx: JobContext | None = None
    ) -> int | None:
        """Move share ``index`` of a part from ``source`` to ``target``; its size, or None if it lost a race.

        ``ShareCorrupt`` when the copy fails verification on the target (the
        source is bad: the caller should have it repaired instead);
        ``NodeUnavailable``/``ShareNotFound`` when the source cannot be read.
        """
        share_id = f"{part_id}.{index}"
        target_store = self._nodes.client(target)
        reader = await self._nodes.client(source).open(share_id)
        try:
            size = await target_store.put(share_id, self._paced(reader.iter_raw(), ctx), reader.total)
        finally:
            await reader.close()
        try:
            report = await target_store.verify(share_id)
            if not report.ok:
                raise ShareCorrupt(
                    f"share {share_id} from node {source} has corrupt blocks {list(report.corrupt_blocks)}"
                )
            switched = await self._db.write(
                lambda conn: repo.set_share(conn, part_id, index, target, "ok", expected_node=source)
            )
        except BaseException:
            await self._delete(share_id, target)
            raise
        if not switched:
            await self._delete(share_id, target)
            return None
        await self._delete(share_id, source)
        return size

    async def _paced(self, chunks: AsyncIterator[bytes], ctx: JobContext | None) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            await self.bandwidth.take(len(chunk))
            if ctx is not None:
                await ctx.progress(len(chunk))
            yield chunk

    async def _delete(self, share_id: str, node_id: int) -> None:
        try:
            await self._nodes.client(node_id).delete(share_id)
        except (CargoholdError, OSError) as exc:
            log.info("left share %s on node %s for the orphan sweep: %s", share_id, node_id, exc)


def zone_counts(nodes: NodeRegistry, node_ids: list[int | None]) -> dict[str, int]:
    """Shares per zone among ``node_ids`` (nodes no longer registered count nowhere)."""
    counts: dict[str, int] = {}
    for node_id in node_ids:
        zone = nodes.zone_of(node_id)
        if zone is not None:
            counts[zone] = counts.get(zone, 0) + 1
    return counts
