"""The gateway's view of the storage nodes: membership, health, fill and placement.

Node rows live in the metadata store so every gateway sees the same cluster.
Each gateway keeps a cached copy, refreshed by its health monitor, and adds the
bytes it has just placed on a node ("reservations") to that node's reported
use until the next probe, so a burst of writes spreads out instead of piling
onto whichever node looked emptiest at the last probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.model import NODE_LOST, NODE_RETIRED, NodeRecord
from cargohold.domain.placement import Candidate, choose_nodes
from cargohold.errors import (
    CargoholdError,
    NodeNotRegistered,
    NodeUnavailable,
    NodeUntrusted,
    NodeUntrustedNotRegistered,
    NoSuchNode,
)
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metrics import NODE_ERRORS, NODE_FILL, NODE_SHARES, NODE_UP
from cargohold.storage.node_client import NodeClient

log = logging.getLogger(__name__)


class NodeRegistry:
    def __init__(
        self,
        db: Database,
        session: aiohttp.ClientSession,
        secret: str,
        *,
        timeout: float,
        probe_interval: float,
        probe_session: aiohttp.ClientSession | None = None,
        probe_timeout: float | None = None,
    ) -> None:
        self._db = db
        #: A health answer is tiny: a node silent this long is down, even if a
        #: transfer may wait ``timeout`` for it (a frozen node must not look up).
        self._probe_timeout = min(timeout, probe_timeout) if probe_timeout else timeout
        self._session = session
        #: Health checks use their own connections (never queued behind transfers).
        self._probe_session = probe_session or session
        self._probe_clients: dict[int, NodeClient] = {}
        self._secret = secret
        self._timeout = timeout
        self._interval = probe_interval
        self._nodes: dict[int, NodeRecord] = {}
        self._clients: dict[int, NodeClient] = {}
        self._reserved: dict[int, int] = {}
        self._rng = random.Random()
        self._monitor: asyncio.Task[None] | None = None
        #: Bumped by every admin change made here, so a load that read the
        #: table before the change committed cannot put the old record back.
        self._generation = 0

    # -- membership ---------------------------------------------------------

    async def load(self) -> None:
        while True:
            generation = self._generation
            async with self._db.read() as conn:
                nodes = await repo.list_nodes(conn)
            if generation == self._generation:
                self._nodes = {n.id: n for n in nodes}
                return

    def nodes(self) -> list[NodeRecord]:
        return sorted(self._nodes.values(), key=lambda n: n.id)

    def members(self) -> int:
        """Nodes a layout can count on: registered, neither lost nor retired (off or down for now
        is a state an admin or the node itself ends)."""
        return sum(1 for n in self._nodes.values() if n.state not in (NODE_LOST, NODE_RETIRED))

    def get(self, node_id: int) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def client(self, node_id: int) -> NodeClient:
        client = self._clients.get(node_id)
        node = self._nodes.get(node_id)
        if node is None:
            raise NodeUnavailable(f"node {node_id} is not registered")
        if client is None or client.base_url != node.url:
            client = self._client(self._session, node)
            self._clients[node_id] = client
        return client

    def _client(self, session: aiohttp.ClientSession, node: NodeRecord) -> NodeClient:
        # Named by id: node URLs are for admins, and error details reach every user.
        return NodeClient(session, node.url, self._secret, timeout=self._timeout, name=f"node {node.id}")

    def _probe_client(self, node: NodeRecord) -> NodeClient:
        client = self._probe_clients.get(node.id)
        if client is None or client.base_url != node.url:
            client = self._client(self._probe_session, node)
            self._probe_clients[node.id] = client
        return client

    async def add(self, url: str, zone: str) -> NodeRecord:
        """Register a node after checking it answers with our cluster secret."""
        probe = NodeClient(self._probe_session, url.rstrip("/"), self._secret, timeout=self._timeout)
        try:
            health = await probe.health()
        except NodeUntrusted as exc:
            raise NodeUntrustedNotRegistered(f"node at {url} was refused: {exc.detail}") from exc
        except CargoholdError as exc:
            raise NodeNotRegistered(f"node at {url} did not answer its health check: {exc.detail}") from exc
        node = await self._db.write(lambda conn: repo.add_node(conn, url.rstrip("/"), zone))
        node = await self._record_health(node, health)
        self._nodes[node.id] = node
        self._generation += 1
        return node

    async def update(
        self,
        node_id: int,
        *,
        enabled: bool | None = None,
        active: bool | None = None,
        zone: str | None = None,
        state: str | None = None,
        also: Callable[[AsyncConnection, NodeRecord], Awaitable[None]] | None = None,
    ) -> NodeRecord:
        """Change a node's admin fields; ``also`` runs in the same transaction (the work that follows)."""

        async def change(conn: AsyncConnection) -> NodeRecord:
            node = await repo.update_node(
                conn, node_id, enabled=enabled, active=active, zone=zone, state=state
            )
            if also is not None:
                await also(conn, node)
            return node

        node = await self._db.write(change)
        self._nodes[node.id] = node
        self._generation += 1
        return node

    async def remove(self, node_id: int) -> None:
        """Forget a node that holds no shares (``NodeNotEmpty`` otherwise)."""
        await self._db.write(lambda conn: repo.delete_node(conn, node_id))
        self._generation += 1
        self._nodes.pop(node_id, None)
        self._clients.pop(node_id, None)
        self._probe_clients.pop(node_id, None)

    # -- health -------------------------------------------------------------

    async def probe(self, node: NodeRecord) -> NodeRecord:
        try:
            health = await asyncio.wait_for(self._probe_client(node).health(), self._probe_timeout)
        except (CargoholdError, OSError, TimeoutError, aiohttp.ClientError):
            health = None
        try:
            updated = await self._record_health(node, health)
        except NoSuchNode:  # removed while its probe was in flight
            self._nodes.pop(node.id, None)
            return node
        # The probe took time: an admin may have drained, disabled or removed
        # the node meanwhile. Keep their fields and take only what the probe saw;
        # a removal that finished meanwhile must not be undone here.
        current = self._nodes.get(node.id)
        if current is None:
            return updated
        updated = replace(
            current,
            healthy=updated.healthy,
            capacity=updated.capacity,
            used=updated.used,
            free=updated.free,
            shares=updated.shares,
            last_seen=updated.last_seen,
        )
        self._nodes[node.id] = updated
        self._reserved[node.id] = 0
        labels = (str(node.id), updated.zone)
        NODE_UP.labels(*labels).set(1 if updated.healthy else 0)
        NODE_FILL.labels(*labels).set(updated.fill)
        NODE_SHARES.labels(*labels).set(updated.shares)
        return updated

    async def _record_health(self, node: NodeRecord, health: dict[str, Any] | None) -> NodeRecord:
        now = datetime.now(UTC)
        if health is None:
            updated = replace(node, healthy=False)
        else:
            updated = replace(
                node,
                healthy=True,
                capacity=int(health["capacity"]),
                used=int(health["used"]),
                free=int(health["free"]),
                shares=int(health["shares"]),
                last_seen=now,
            )
        changed = (node.healthy, node.capacity, node.used, node.free, node.shares) != (
            updated.healthy,
            updated.capacity,
            updated.used,
            updated.free,
            updated.shares,
        )
        if changed or (health is not None and _stale(node.last_seen, now)):

            async def store(conn: AsyncConnection) -> None:
                was = await repo.node_healthy(conn, node.id)
                await repo.update_node_stats(
                    conn,
                    node.id,
                    healthy=updated.healthy,
                    capacity=updated.capacity,
                    used=updated.used,
                    free=updated.free,
                    shares=updated.shares,
                    last_seen=updated.last_seen,
                )
                if was is not None and was != updated.healthy:
                    # Told once per change of the stored state, however many processes probe.
                    kind = EventType.NODE_UP if updated.healthy else EventType.NODE_DOWN
                    await repo.events.append(conn, node_event(kind, updated))

            await self._db.write(store)
        return updated

    async def probe_all(self) -> None:
        await self.load()
        await asyncio.gather(*(self.probe(n) for n in self.nodes()))

    def mark_down(self, node_id: int) -> None:
        """A transfer failed: stop placing on this node until the next probe says otherwise."""
        NODE_ERRORS.labels(str(node_id)).inc()
        node = self._nodes.get(node_id)
        if node is not None and node.healthy:
            self._nodes[node_id] = replace(node, healthy=False)

    def start_monitor(self) -> None:
        self._monitor = asyncio.create_task(self._monitor_loop())

    async def _monitor_loop(self) -> None:
        while True:
            try:
                await self.probe_all()
            except Exception:  # the monitor must outlive a bad probe round
                log.exception("node health probe failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    # -- placement ----------------------------------------------------------

    def readable(self, node_id: int | None) -> bool:
        node = self._nodes.get(node_id) if node_id is not None else None
        return node is not None and node.enabled and node.healthy

    def _candidates(self, exclude: Collection[int] = ()) -> list[Candidate]:
        return [
            Candidate(n.id, n.zone, n.capacity, n.used + self._reserved.get(n.id, 0))
            for n in self._nodes.values()
            if n.writable and n.id not in exclude
        ]

    def _reserve(self, node_ids: list[int], expected_bytes_per_share: int) -> None:
        for node_id in node_ids:
            self._reserved[node_id] = self._reserved.get(node_id, 0) + expected_bytes_per_share

    def place(
        self, width: int, expected_bytes_per_share: int, *, minimum: int | None = None
    ) -> list[int | None]:
        """Choose nodes for a new part and reserve the space it is expected to take.

        With ``minimum`` (the write quorum), fewer writable nodes than
        ``width`` still place the part: the shares left without a node are
        None, recorded missing, and repair places them when nodes return.
        """
        chosen = choose_nodes(self._candidates(), width, self._rng, minimum=minimum)
        self._reserve(chosen, expected_bytes_per_share)
        placed: list[int | None] = list(chosen)
        if len(placed) < width:
            # Which share indexes go without a node does not matter: spread them at random.
            slots = list(range(width))
            self._rng.shuffle(slots)
            filled: list[int | None] = [None] * width
            for slot, node_id in zip(sorted(slots[: len(placed)]), placed, strict=True):
                filled[slot] = node_id
            placed = filled
        return placed

    def place_more(
        self, count: int, expected_bytes_per_share: int, *, exclude: set[int], zones_used: dict[str, int]
    ) -> list[int]:
        """Up to ``count`` writable nodes outside ``exclude`` for shares of an existing part.

        Repair, rebalance and drain use it: the nodes keep the part's shares
        on distinct nodes and its zone spread (``zones_used`` counts the
        shares it keeps per zone). Fewer (possibly none) when too few nodes
        qualify.
        """
        candidates = self._candidates(exclude)
        if not candidates or count <= 0:
            return []
        chosen = choose_nodes(
            candidates, min(count, len(candidates)), self._rng, zones_used=zones_used, shuffle=False
        )
        self._reserve(chosen, expected_bytes_per_share)
        return chosen

    def zone_of(self, node_id: int | None) -> str | None:
        node = self._nodes.get(node_id) if node_id is not None else None
        return node.zone if node is not None else None


def node_event(kind: EventType, node: NodeRecord, **detail: Any) -> EventDraft:
    """A node's event: the cluster's own doing (no actor), seen by admins."""
    return EventDraft(
        kind,
        None,
        detail={"node_id": node.id, "url": node.url, "zone": node.zone, "state": node.state, **detail},
    )


def _stale(last_seen: datetime | None, now: datetime) -> bool:
    """Refresh last_seen in the store at most every 30 s when nothing else changed."""
    return last_seen is None or (now - last_seen).total_seconds() > 30
