"""Scrub: every share on every node re-read and checked against its frame checksums, on the node.

No share bytes cross the network: the worker walks a node's share listing
and asks the node to verify each share in place (``POST …/verify``), which
also moves a corrupt share aside so it is never served again. The part it
belonged to is then marked and queued for repair. The walk keeps its cursor
in the job, so a restarted worker resumes where the last one stopped, and it
is paced per node by ``scrub_bandwidth``.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import NODE_RETIRED
from cargohold.errors import ShareNotFound
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext
from cargohold.workers.limits import Bandwidth

log = logging.getLogger(__name__)

PAGE = 500
#: Repairs of shares scrub found corrupt go before those of degraded writes.
SCRUB_REPAIR_PRIORITY = 2


def split_share_id(share_id: str) -> tuple[str, int] | None:
    """``(part_id, index)`` of a share id the store writes, or None for anything else."""
    part_id, dot, index = share_id.rpartition(".")
    if not dot or not part_id or not index.isdigit():
        return None
    return part_id, int(index)


class Scrubber:
    def __init__(self, db: Database, nodes: NodeRegistry, rate: int) -> None:
        self._db = db
        self._nodes = nodes
        self.rate = rate

    async def handle(self, ctx: JobContext) -> None:
        """The ``scrub_node`` job: one pass over one node, resumable from ``payload["after"]``."""
        node_id = int(ctx.payload["node_id"])
        node = self._nodes.get(node_id)
        if node is None or node.state == NODE_RETIRED:
            return
        store = self._nodes.client(node_id)
        pace = Bandwidth(self.rate)  # per node: the node's disk is what scrub must not hog
        ctx.total_bytes = node.used
        ctx.payload.setdefault("corrupt", [])
        while True:
            infos = await store.list(ctx.payload.get("after", ""), PAGE)
            if not infos:
                break
            for info in infos:
                try:
                    report = await store.verify(info.share_id, quarantine=True)
                except ShareNotFound:
                    continue  # deleted since the listing
                await pace.take(report.bytes)
                if not report.ok:
                    ctx.payload["corrupt"].append(info.share_id)
                    await self._corrupt(node_id, info.share_id, list(report.corrupt_blocks))
                    await ctx.progress(report.bytes, errors=1, force=True)
                else:
                    await ctx.progress(report.bytes)
            ctx.payload["after"] = infos[-1].share_id
        await ctx.progress(force=True)

    async def _corrupt(self, node_id: int, share_id: str, blocks: list[int]) -> None:
        log.warning(
            "scrub: share %s on node %s is corrupt (blocks %s); quarantined", share_id, node_id, blocks
        )
        parsed = split_share_id(share_id)
        if parsed is None:
            return

        async def mark(conn: AsyncConnection) -> None:
            if await repo.mark_share_missing(conn, parsed[0], parsed[1], node_id):
                await repo.enqueue_repair(conn, parsed[0], priority=SCRUB_REPAIR_PRIORITY)

        await self._db.write(mark)
