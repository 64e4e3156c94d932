"""What admins see and steer of the healing machinery: jobs, redundancy, throttles, node life.

The work itself runs in workers (``workers/``); this service only reads the
metadata store and queues jobs, so any gateway can answer it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.config import Settings
from cargohold.domain.events import EventType
from cargohold.domain.jobs import ALL_KINDS, DRAIN_NODE, LOST_NODE, REBALANCE, SCRUB_NODE
from cargohold.domain.layout import Layout
from cargohold.domain.model import (
    NODE_DRAINING,
    NODE_LOST,
    NODE_NORMAL,
    NODE_RETIRED,
    JobStatus,
    NodeRecord,
)
from cargohold.domain.placement import zone_safe, zone_safe_possible
from cargohold.errors import InvalidArgument
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.health import count_objects, iter_part_shares
from cargohold.metrics import JOBS, PARTS_DEGRADED, REPAIR_WAITING_BYTES
from cargohold.service.nodes import NodeRegistry, node_event
from cargohold.workers.limits import LimitsStore, WorkerLimits

#: Node states an admin may set (retired is reached by draining, never set by hand).
ADMIN_NODE_STATES = (NODE_NORMAL, NODE_DRAINING, NODE_LOST)


@dataclass(slots=True)
class HealthReport:
    objects: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("total", "healthy", "degraded", "unreadable"), 0)
    )
    parts_total: int = 0
    parts_healthy: int = 0
    parts_degraded: dict[int, int] = field(default_factory=dict)  # missing shares -> parts
    parts_unreadable: int = 0
    #: Parts with more than m shares in one zone although their layout and the zones allow fewer.
    parts_not_zone_safe: int = 0
    repair_waiting_bytes: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    fill_spread: float = 0.0
    jobs: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "parts": {
                "total": self.parts_total,
                "healthy": self.parts_healthy,
                "degraded": {str(k): v for k, v in sorted(self.parts_degraded.items())},
                "unreadable": self.parts_unreadable,
                "not_zone_safe": self.parts_not_zone_safe,
            },
            "repair_waiting_bytes": self.repair_waiting_bytes,
            "nodes": self.nodes,
            "fill_spread": round(self.fill_spread, 2),
            "jobs": self.jobs,
        }


def node_status(node: NodeRecord) -> str:
    """up or down, as the health probes last saw it."""
    return "up" if node.healthy else "down"


def fill_spread(nodes: list[NodeRecord]) -> float:
    """Percentage points between the fullest and the emptiest node that takes writes."""
    fills = [n.fill * 100 for n in nodes if n.writable and n.capacity > 0]
    return max(fills) - min(fills) if len(fills) > 1 else 0.0


def share_available(node: NodeRecord | None, state: str) -> bool:
    """A share counts towards redundancy while it is ok on a node that is up and in service."""
    return (
        state == "ok"
        and node is not None
        and node.enabled
        and node.healthy
        and node.state in (NODE_NORMAL, NODE_DRAINING)
    )


class HealingService:
    def __init__(self, db: Database, nodes: NodeRegistry, limits: LimitsStore, settings: Settings) -> None:
        self._db = db
        self._nodes = nodes
        self._limits = limits
        self._settings = settings

    # -- jobs -------------------------------------------------------------------

    async def jobs(
        self, *, kinds: list[str], states: list[str], before: int | None, limit: int
    ) -> list[JobStatus]:
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000", field="limit")
        async with self._db.read() as conn:
            return await repo.list_jobs(conn, kinds=kinds, states=states, before=before, limit=limit)

    # -- redundancy ---------------------------------------------------------------

    async def health(self) -> HealthReport:
        """Count parts and objects by how many shares they can still serve (one pass, bounded memory)."""
        report = HealthReport()
        nodes = {n.id: n for n in self._nodes.nodes()}
        object_worst: dict[int, str] = {}
        zone_nodes: dict[str, int] = {}
        for node in nodes.values():
            if node.state == NODE_NORMAL and node.enabled:
                zone_nodes[node.zone] = zone_nodes.get(node.zone, 0) + 1
        async with self._db.read() as conn:
            async for part in iter_part_shares(conn):
                layout = _layout(part.layout)
                available = sum(share_available(nodes.get(n) if n else None, s) for n, s in part.shares)
                missing = layout.width - available
                report.parts_total += 1
                if zone_safe_possible(layout.width, layout.m, zone_nodes) and not zone_safe(
                    [nodes[n].zone if n in nodes else None for n, _ in part.shares if n is not None], layout.m
                ):
                    report.parts_not_zone_safe += 1
                if available < layout.k:
                    report.parts_unreadable += 1
                    verdict = "unreadable"
                elif missing > 0:
                    report.parts_degraded[missing] = report.parts_degraded.get(missing, 0) + 1
                    report.repair_waiting_bytes += missing * -(-part.size // layout.k)
                    verdict = "degraded"
                else:
                    report.parts_healthy += 1
                    verdict = "healthy"
                if part.object_id is not None:
                    object_worst[part.object_id] = _worse(
                        object_worst.get(part.object_id, "healthy"), verdict
                    )
            counts = await repo.job_counts(conn)
            total_objects = await count_objects(conn)
        for verdict in object_worst.values():
            report.objects[verdict] += 1
        report.objects["total"] = total_objects
        report.objects["healthy"] = total_objects - report.objects["degraded"] - report.objects["unreadable"]
        report.nodes = {state: 0 for state in ("up", "down", NODE_LOST, NODE_DRAINING, NODE_RETIRED)}
        for node in nodes.values():
            report.nodes[node_status(node)] += 1
            if node.state != NODE_NORMAL:
                report.nodes[node.state] += 1
        report.fill_spread = fill_spread(list(nodes.values()))
        report.jobs = {state: counts.get(state, 0) for state in ("queued", "running", "failed")}
        PARTS_DEGRADED.set(sum(report.parts_degraded.values()) + report.parts_unreadable)
        REPAIR_WAITING_BYTES.set(report.repair_waiting_bytes)
        return report

    async def export_job_counts(self) -> None:
        """Set the jobs gauge (every kind and state, zero included, so a drained queue shows 0)."""
        async with self._db.read() as conn:
            counts = await repo.job_counts_by_kind(conn)
        for kind in ALL_KINDS:
            for state in ("queued", "running", "failed"):
                JOBS.labels(kind, state).set(counts.get((kind, state), 0))

    # -- throttles --------------------------------------------------------------

    async def limits(self) -> WorkerLimits:
        return await self._limits.get()

    async def update_limits(self, changes: dict[str, Any]) -> WorkerLimits:
        return await self._limits.update(changes)

    # -- starting work ------------------------------------------------------------

    async def start_scrub(self) -> int:
        """Queue a scrub of every node that is on (one job per node, none twice)."""
        targets = [n.id for n in self._nodes.nodes() if n.enabled and n.state != NODE_RETIRED]
        return await self._db.write(functools.partial(_queue_scrubs, node_ids=targets))

    async def start_rebalance(self) -> int:
        queued = await self._db.write(lambda conn: repo.enqueue(conn, REBALANCE, {}, dedupe=REBALANCE))
        return 1 if queued is not None else 0

    async def set_node_state(self, node_id: int, state: str) -> NodeRecord:
        """Drain, mark lost or return a node to service, and queue the work that follows."""
        if state not in ADMIN_NODE_STATES:
            raise InvalidArgument(f"state must be one of {', '.join(ADMIN_NODE_STATES)}", field="state")

        async def follow_up(conn: AsyncConnection, node: NodeRecord) -> None:
            # The work the new state needs is queued in the transaction that sets it.
            if state == NODE_DRAINING:
                await repo.enqueue(conn, DRAIN_NODE, {"node_id": node_id}, dedupe=f"drain:{node_id}")
            elif state == NODE_LOST:
                await repo.enqueue(conn, LOST_NODE, {"node_id": node_id}, dedupe=f"lost:{node_id}")
                await repo.events.append(conn, node_event(EventType.NODE_LOST, node))

        node = await self._nodes.update(node_id, state=state, also=follow_up)
        if state not in (NODE_DRAINING, NODE_LOST):
            await self.start_rebalance()
        return node

    async def remove_node(self, node_id: int) -> None:
        await self._nodes.remove(node_id)


async def _queue_scrubs(conn: AsyncConnection, *, node_ids: list[int]) -> int:
    queued = 0
    for node_id in node_ids:
        job = await repo.enqueue(conn, SCRUB_NODE, {"node_id": node_id}, dedupe=f"scrub:{node_id}")
        queued += job is not None
    return queued


@functools.lru_cache(maxsize=64)
def _layout(spec: str) -> Layout:
    return Layout.parse(spec)


_RANK = {"healthy": 0, "degraded": 1, "unreadable": 2}


def _worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def job_json(job: JobStatus, now: datetime | None = None) -> dict[str, Any]:
    """A job as the API shows it; ``rate`` is bytes/s over its running time."""
    now = now or datetime.now(UTC)
    rate = None
    if job.started_at is not None:
        elapsed = ((job.finished_at or now) - job.started_at).total_seconds()
        rate = round(job.progress_bytes / elapsed, 1) if elapsed > 0 else None

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "payload": job.payload,
        "attempts": job.attempts,
        "priority": job.priority,
        "progress_bytes": job.progress_bytes,
        "total_bytes": job.total_bytes,
        "rate": rate,
        "errors": job.errors,
        "last_error": job.last_error,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }
