"""Rebalance: move shares from the fullest to the emptiest nodes until fill is even.

Fill is used/capacity of every node that takes writes. While the spread
between the fullest and the emptiest exceeds ``rebalance_threshold``
percentage points, a share of the fullest node is moved to the emptiest node
that can take it: one holding no other share of that part, and whose zone
would not hold more of the part's shares than the zone it leaves. Fill is
estimated as moves complete and re-read from the nodes every few moves.
Moves run ``concurrency`` at a time (never two of one part), paced by
``rebalance_bandwidth``; reads and writes go on throughout (see moves.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cargohold.domain.layout import Layout
from cargohold.domain.model import PartRecord
from cargohold.errors import CargoholdError
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.workers.jobs import JobContext
from cargohold.workers.moves import ShareMover, zone_counts

log = logging.getLogger(__name__)

#: Node figures are re-read from the nodes after this many moves.
REPROBE_EVERY = 32
#: Rounds of one job at most; each one after the first corrects what the last left over.
MAX_ROUNDS = 8
PAGE = 200


@dataclass(slots=True)
class _Fill:
    node_id: int
    zone: str
    used: int
    capacity: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity


@dataclass(frozen=True, slots=True)
class _Move:
    part_id: str
    index: int
    source: int
    target: int
    size: int


class Rebalancer:
    def __init__(
        self, db: Database, nodes: NodeRegistry, mover: ShareMover, threshold: float, concurrency: int
    ) -> None:
        self._db = db
        self._nodes = nodes
        self._mover = mover
        self.threshold = threshold
        self.concurrency = concurrency

    async def handle(self, ctx: JobContext) -> None:
        """The ``rebalance`` job: move shares until the spread is within the threshold or nothing can move.

        It runs in rounds, each from fresh node figures and with every part
        eligible again: a round's estimates drift (a re-read while moves are
        in flight counts those moves on neither side, so nodes overshoot),
        and a part it passed over (busy, or no target could take it then)
        may fit now. A round that moves nothing ends the job.
        """
        moved = 0
        for _ in range(MAX_ROUNDS):
            moved_now = await self._round(ctx)
            moved += moved_now
            if not moved_now:
                break
        ctx.payload["moved"] = moved
        await ctx.progress(force=True)

    async def _round(self, ctx: JobContext) -> int:
        """Move shares while the planner finds any; return how many moved."""
        await self._nodes.probe_all()
        fills = self._fills()
        exhausted: set[int] = set()  # sources with nothing left that may move
        busy: set[str] = set()
        cursors: dict[int, str] = {}
        lock = asyncio.Lock()
        moved = 0

        async def next_move() -> _Move | None:
            async with lock:
                return await self._plan(fills, exhausted, busy, cursors)

        async def mover() -> None:
            nonlocal moved
            while (move := await next_move()) is not None:
                try:
                    size = await self._mover.move(move.part_id, move.index, move.source, move.target, ctx)
                except (CargoholdError, OSError) as exc:
                    log.warning("rebalance: moving %s.%s failed: %s", move.part_id, move.index, exc)
                    await ctx.progress(errors=1)
                    size = None
                finally:
                    busy.discard(move.part_id)
                if size is None:  # undo the estimate: it did not move
                    fills[move.source].used += move.size
                    fills[move.target].used -= move.size
                    continue
                moved += 1
                if moved % REPROBE_EVERY == 0:
                    async with lock:
                        await self._nodes.probe_all()
                        fresh = self._fills()
                        fills.clear()
                        fills.update(fresh)

        await asyncio.gather(*(mover() for _ in range(max(1, self.concurrency))))
        return moved

    def _fills(self) -> dict[int, _Fill]:
        return {
            n.id: _Fill(n.id, n.zone, n.used, n.capacity)
            for n in self._nodes.nodes()
            if n.writable and n.capacity > 0
        }

    async def _plan(
        self, fills: dict[int, _Fill], exhausted: set[int], busy: set[str], cursors: dict[int, str]
    ) -> _Move | None:
        """The next share to move (estimates updated), or None when balanced or stuck."""
        while True:
            sources = sorted(
                (f for f in fills.values() if f.node_id not in exhausted), key=lambda f: -f.percent
            )
            if not sources or len(fills) < 2:
                return None
            source = sources[0]
            targets = sorted(
                (f for f in fills.values() if source.percent - f.percent > self.threshold),
                key=lambda f: f.percent,
            )
            if not targets:
                return None
            move = await self._find(source, targets, busy, cursors)
            if move is None:
                exhausted.add(source.node_id)
                continue
            busy.add(move.part_id)
            fills[move.source].used -= move.size
            fills[move.target].used += move.size
            return move

    async def _find(
        self, source: _Fill, targets: list[_Fill], busy: set[str], cursors: dict[int, str]
    ) -> _Move | None:
        """A share on ``source`` that one of ``targets`` (emptiest first) may take."""
        while True:
            async with self._db.read() as conn:
                part_ids = await repo.parts_on_node(
                    conn, source.node_id, cursors.get(source.node_id, ""), PAGE
                )
                parts = [await repo.get_part(conn, part_id) for part_id in part_ids]
            if not part_ids:
                return None
            for part_id, part in zip(part_ids, parts, strict=True):
                # The cursor moves past every part looked at, movable or not: each is tried once.
                cursors[source.node_id] = part_id
                if part is None or part_id in busy:
                    continue
                move = self._fit(part, source, targets)
                if move is not None:
                    return move

    def _fit(self, part: PartRecord, source: _Fill, targets: list[_Fill]) -> _Move | None:
        share = next((s for s in part.shares if s.node_id == source.node_id and s.state == "ok"), None)
        if share is None:
            return None
        holders = {s.node_id for s in part.shares}
        zones = zone_counts(self._nodes, [s.node_id for s in part.shares])
        k = max(1, _data_shares(part.layout))
        size = -(-part.size // k)
        for target in targets:
            if target.node_id in holders:
                continue
            if target.zone != source.zone and zones.get(target.zone, 0) >= zones.get(source.zone, 0):
                continue  # the move would crowd the part into one zone
            return _Move(part.id, share.index, source.node_id, target.node_id, size)
        return None


def _data_shares(layout: str) -> int:
    return Layout.parse(layout).k
