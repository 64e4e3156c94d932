"""Share garbage collection: deletes the shares of parts no version references any more.

Work arrives as ``delete_part`` jobs, queued in the same transaction that
dropped the last reference to a part (object replaced or deleted), so none is
lost. Workers run them, and so does every gateway right after a delete (so
freed space shows at once); the job table hands each to one of them. Freeing
is idempotent: a share already gone counts as deleted.
"""

from __future__ import annotations

import logging

from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext

log = logging.getLogger(__name__)


class GarbageCollector:
    def __init__(self, db: Database, nodes: NodeRegistry) -> None:
        self._db = db
        self._nodes = nodes

    async def handle(self, ctx: JobContext) -> None:
        """The ``delete_part`` job as a worker runs it."""
        await self.free(ctx.payload["part_id"])

    async def free(self, part_id: str) -> None:
        """Delete a detached part's shares, then the part (a no-op for a part still in use)."""
        async with self._db.read() as conn:
            if await repo.part_in_use(conn, part_id):
                log.warning("part %s is in use again; not freeing it", part_id)
                return
            locations = await repo.part_share_locations(conn, [part_id])
        for part, index, node_id in locations:
            if node_id is None or self._nodes.get(node_id) is None:
                continue
            await self._nodes.client(node_id).delete(f"{part}.{index}")
        await self._db.write(lambda conn: repo.delete_parts(conn, [part_id]))
