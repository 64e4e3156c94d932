"""Where an object's shares live and how healthy each holder is: the object details a user sees.

Anyone who may read an object may ask where it is stored, so the answer names
nodes the way error messages do (by id and zone) and never by their URL,
which is for admins. It is read from the metadata store and the gateway's node
registry (kept fresh by the health monitor), without dialling any node: a
frozen node must not make the details of every object it holds hang.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cargohold.domain.layout import Layout
from cargohold.domain.model import ObjectRecord, PartRecord, Principal, ShareRecord
from cargohold.service.healing import node_status, share_available
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService

#: The layout of an object small enough to live in the metadata store, without shares.
INLINE = "inline"
HEALTHY, DEGRADED, UNREADABLE = "healthy", "degraded", "unreadable"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNREADABLE: 2}


@dataclass(frozen=True, slots=True)
class Holder:
    """A node as any reader may see it: no URL."""

    id: int
    zone: str
    #: "up" or "down", as the last health probe saw it.
    status: str
    #: Life state: normal, draining, retired or lost.
    state: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class SharePlace:
    index: int
    #: None when the write found no node for it, or the node has since been removed.
    holder: Holder | None
    #: As the metadata records it: "ok", or "missing" once a read or scrub found it gone.
    state: str
    #: Counts towards redundancy: ok, on a node that is on, up and in service.
    available: bool


@dataclass(frozen=True, slots=True)
class PartPlace:
    part: PartRecord
    #: Shares a read needs (k of the layout).
    needed: int
    shares: tuple[SharePlace, ...]

    @property
    def available(self) -> int:
        return sum(1 for s in self.shares if s.available)

    @property
    def health(self) -> str:
        """healthy: every share available; degraded: enough to read; unreadable: fewer than k."""
        if self.available < self.needed:
            return UNREADABLE
        return HEALTHY if self.available == len(self.shares) else DEGRADED


@dataclass(frozen=True, slots=True)
class Placement:
    record: ObjectRecord
    parts: tuple[PartPlace, ...]

    @property
    def layout(self) -> str:
        return self.parts[0].part.layout if self.parts else INLINE

    @property
    def health(self) -> str:
        worst = HEALTHY
        for part in self.parts:
            if _RANK[part.health] > _RANK[worst]:
                worst = part.health
        return worst


@functools.lru_cache(maxsize=64)
def _layout(spec: str) -> Layout:
    return Layout.parse(spec)


def _share(share: ShareRecord, nodes: NodeRegistry) -> SharePlace:
    node = nodes.get(share.node_id) if share.node_id is not None else None
    holder = None
    if node is not None:
        holder = Holder(node.id, node.zone, node_status(node), node.state, node.enabled)
    return SharePlace(share.index, holder, share.state, share_available(node, share.state))


def place(record: ObjectRecord, nodes: NodeRegistry) -> Placement:
    """The placement of a version already read: each part's shares with their holders."""
    parts = tuple(
        PartPlace(part, _layout(part.layout).k, tuple(_share(s, nodes) for s in part.shares))
        for part in record.parts
    )
    return Placement(record, parts)


async def placement(
    objects: ObjectService,
    nodes: NodeRegistry,
    who: Principal,
    bucket: str,
    key: str,
    version_id: str | None = None,
) -> Placement:
    """Where ``key`` (or ``version_id`` of it) is stored, for whoever may read it."""
    return place(await objects.head(who, bucket, key, version_id), nodes)
