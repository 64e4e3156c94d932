"""Share garbage collection: deletes the shares of parts no version references any more.

Work arrives as ``delete_part`` jobs, queued in the same transaction that
dropped the last reference to a part (object replaced or deleted), so none is
lost. The worker is idempotent (a share already gone counts as deleted) and
has a run-once mode for tests and operators.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.errors import CargoholdError
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import DELETE_PART

log = logging.getLogger(__name__)


class GarbageCollector:
    def __init__(self, db: Database, nodes: NodeRegistry) -> None:
        self._db = db
        self._nodes = nodes

    async def run_once(self) -> int:
        """Process every due job; return how many parts were freed."""
        freed = 0
        while True:
            job = await self._db.write(lambda conn: repo.claim(conn, [DELETE_PART], 60))
            if job is None:
                return freed
            try:
                await self._free(job.payload["part_id"])
            except (CargoholdError, OSError) as exc:
                await self._db.write(functools.partial(_fail, job_id=job.id, error=str(exc)))
                continue
            await self._db.write(functools.partial(_done, job_id=job.id))
            freed += 1

    async def _free(self, part_id: str) -> None:
        async with self._db.read() as conn:
            locations = await repo.part_share_locations(conn, [part_id])
        for part, index, node_id in locations:
            if self._nodes.get(node_id) is None:
                continue
            await self._nodes.client(node_id).delete(f"{part}.{index}")
        await self._db.write(lambda conn: repo.delete_parts(conn, [part_id]))


async def _fail(conn: AsyncConnection, *, job_id: int, error: str) -> None:
    await repo.fail(conn, job_id, error, 10.0)


async def _done(conn: AsyncConnection, *, job_id: int) -> None:
    await repo.complete(conn, job_id)
