"""The orphan sweep: delete shares that no part refers to, once they are old enough.

A crash in the middle of a write (gateway killed mid-PUT, a worker killed
mid-repair or mid-move) leaves share files that no committed part and no open
upload points at. The sweep lists every node's shares, looks each page up in
the metadata, and deletes those unknown there whose file is older than
``orphan_grace`` — younger ones may belong to a write still in progress,
whose part row appears only at its commit.
"""

from __future__ import annotations

import logging
import time

from cargohold.domain.model import NODE_LOST, NODE_RETIRED
from cargohold.errors import CargoholdError
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext
from cargohold.workers.scrub import split_share_id

log = logging.getLogger(__name__)

PAGE = 1000


class OrphanSweeper:
    def __init__(self, db: Database, nodes: NodeRegistry, grace: float) -> None:
        self._db = db
        self._nodes = nodes
        self.grace = grace

    async def handle(self, ctx: JobContext) -> None:
        """The ``orphan_sweep`` job: one pass over every reachable node."""
        deleted = 0
        for node in self._nodes.nodes():
            if not node.healthy or node.state == NODE_LOST:
                continue
            try:
                deleted += await self._sweep_node(node.id, node.state == NODE_RETIRED, ctx)
            except (CargoholdError, OSError) as exc:
                log.warning("orphan sweep of node %s stopped: %s", node.id, exc)
                await ctx.progress(errors=1)
        ctx.payload["deleted"] = deleted
        await ctx.progress(force=True)

    async def _sweep_node(self, node_id: int, retired: bool, ctx: JobContext) -> int:
        store = self._nodes.client(node_id)
        cutoff = time.time() - self.grace
        after = ""
        deleted = 0
        while True:
            infos = await store.list(after, PAGE)
            if not infos:
                return deleted
            after = infos[-1].share_id
            part_ids = [p[0] for p in map(split_share_id, (i.share_id for i in infos)) if p is not None]
            async with self._db.read() as conn:
                known = await repo.known_shares(conn, node_id, part_ids)
            for info in infos:
                # Nothing new is written to a retired node, so everything unknown there is garbage.
                if info.share_id in known or (info.mtime > cutoff and not retired):
                    continue
                if await store.delete(info.share_id):
                    deleted += 1
                    log.info("deleted orphan share %s from node %s", info.share_id, node_id)
                    await ctx.progress(info.size)
