"""Drain: move every share off a node marked ``draining``, then retire it.

The node keeps serving reads meanwhile and takes no new writes (placement
skips it). Each of its shares goes to a node chosen by placement away from
the part's other nodes and keeping its zone spread. A share that cannot be
copied (the draining node lost it, or it is corrupt, or the node is down) is
rebuilt from the part's other shares instead. When the metadata places
nothing on the node any more it becomes ``retired``; an admin may then remove
it.
"""

from __future__ import annotations

import logging

from cargohold.domain.layout import Layout
from cargohold.domain.model import NODE_DRAINING, NODE_RETIRED
from cargohold.errors import CargoholdError, InsufficientNodes, NodeUnavailable, ShareCorrupt, ShareNotFound
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext
from cargohold.workers.moves import ShareMover, zone_counts
from cargohold.workers.repair import Repairer

log = logging.getLogger(__name__)

PAGE = 200


class Drainer:
    def __init__(self, db: Database, nodes: NodeRegistry, mover: ShareMover, repairer: Repairer) -> None:
        self._db = db
        self._nodes = nodes
        self._mover = mover
        self._repairer = repairer

    async def handle(self, ctx: JobContext) -> None:
        """The ``drain_node`` job: empty the node, then retire it; retried while shares remain."""
        node_id = int(ctx.payload["node_id"])
        await self._nodes.load()
        node = self._nodes.get(node_id)
        if node is None or node.state != NODE_DRAINING:
            return  # returned to service or removed meanwhile
        ctx.total_bytes = node.used
        after = ""
        failures = 0
        while True:
            async with self._db.read() as conn:
                part_ids = await repo.parts_on_node(conn, node_id, after, PAGE)
            if not part_ids:
                break
            for part_id in part_ids:
                try:
                    await self._move_off(part_id, node_id, ctx)
                except (CargoholdError, OSError) as exc:
                    failures += 1
                    log.warning("drain: part %s stays on node %s for now: %s", part_id, node_id, exc)
                    await ctx.progress(errors=1)
            after = part_ids[-1]
        async with self._db.read() as conn:
            left = await repo.parts_on_node(conn, node_id, "", 1)
        if left:
            raise InsufficientNodes(f"node {node_id} still holds shares after {failures} failed moves")
        await self._nodes.update(node_id, state=NODE_RETIRED)
        log.info("node %s drained and retired", node_id)

    async def _move_off(self, part_id: str, node_id: int, ctx: JobContext) -> None:
        async with self._db.read() as conn:
            part = await repo.get_part(conn, part_id)
        if part is None:
            return
        for share in [s for s in part.shares if s.node_id == node_id]:
            others = [s.node_id for s in part.shares if s.index != share.index]
            targets = self._nodes.place_more(
                1,
                -(-part.size // Layout.parse(part.layout).k),
                exclude={n for n in others if n is not None},
                zones_used=zone_counts(self._nodes, others),
            )
            if not targets:
                raise InsufficientNodes(f"no node can take share {part.id}.{share.index}")
            try:
                if share.state != "ok":
                    raise ShareNotFound("marked missing")
                await self._mover.move(part.id, share.index, node_id, targets[0], ctx)
            except (NodeUnavailable, ShareNotFound, ShareCorrupt) as exc:
                log.info("drain: rebuilding %s.%s instead of copying it: %s", part.id, share.index, exc)
                await self._repairer.repair(part.id, ctx, force={share.index})
