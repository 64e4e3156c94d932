"""Placement: which nodes hold the shares of a new part.

Rule: take ``width`` distinct writable nodes, the emptiest first (by fill
fraction, counting bytes this gateway has reserved but not yet seen reported),
and spread them over as many zones as exist before putting two shares in one
zone. Ties are broken at random so equal nodes share the load.

This is "weighted by free space" taken to its limit: a weighted random draw
converges to an even fill only slowly and gives a new empty node barely more
than its proportional share; picking by fill sends new writes to the new nodes
at once and keeps equal nodes within one share of each other. Pure: no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from cargohold.errors import InsufficientNodes


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: int
    zone: str
    capacity: int
    used: int  # bytes reported by the node plus bytes reserved since

    @property
    def fill(self) -> float:
        if self.capacity <= 0:
            return 1.0
        return self.used / self.capacity


def choose_nodes(
    candidates: Sequence[Candidate],
    width: int,
    rng: random.Random | None = None,
    *,
    minimum: int | None = None,
    zones_used: dict[str, int] | None = None,
    shuffle: bool = True,
) -> list[int]:
    """Return node ids for shares 0..width-1 of a new part.

    With ``minimum``, fewer than ``width`` candidates are accepted down to
    ``minimum``: the list is then shorter than ``width`` (a degraded write,
    completed later by repair). ``zones_used`` counts shares the part already
    holds per zone, so nodes chosen to rebuild or move a share keep the
    spread.
    """
    needed = width if minimum is None else min(width, minimum)
    if len(candidates) < needed:
        raise InsufficientNodes(
            f"layout needs {needed} writable nodes, {len(candidates)} available",
            needed=needed,
            available=len(candidates),
        )
    width = min(width, len(candidates))
    rng = rng or random.Random()
    ranked = sorted(candidates, key=lambda c: (c.fill, rng.random()))
    chosen: list[Candidate] = []
    zones_used = dict(zones_used or {})
    while len(chosen) < width:
        # Among nodes not yet chosen, prefer the least used zone, then the emptiest node.
        best = min(
            (c for c in ranked if c not in chosen),
            key=lambda c: (zones_used.get(c.zone, 0), ranked.index(c)),
        )
        chosen.append(best)
        zones_used[best.zone] = zones_used.get(best.zone, 0) + 1
    # Shuffle which node gets which share index so data shares (read on every GET)
    # do not always land on the emptiest nodes.
    ids = [c.node_id for c in chosen]
    if shuffle:
        rng.shuffle(ids)
    return ids


def zone_safe_possible(width: int, m: int, zone_nodes: dict[str, int]) -> bool:
    """Whether ``width`` shares fit with at most ``m`` in each zone, given writable nodes per zone.

    A layout without parity (``m == 0``) never survives the loss of a zone
    that holds a share, and three zones cannot spread 5+2 with two at most in each.
    """
    if m <= 0:
        return False
    return sum(min(m, count) for count in zone_nodes.values()) >= width


def zone_safe(zones_of_shares: Sequence[str | None], m: int) -> bool:
    """True when no zone holds more than ``m`` of these shares: losing any one zone leaves k."""
    counts: dict[str, int] = {}
    for zone in zones_of_shares:
        if zone is not None:
            counts[zone] = counts.get(zone, 0) + 1
    return m > 0 and all(count <= m for count in counts.values())
