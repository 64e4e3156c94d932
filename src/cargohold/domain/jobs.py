"""The kinds of background work, and how the worker's ``--kind`` names group them."""

from __future__ import annotations

DELETE_PART = "delete_part"  # free the shares of a part nothing references any more
REPAIR_PART = "repair_part"  # rebuild a part's missing or corrupt shares
LOST_NODE = "lost_node"  # queue a repair for every part a lost node held
SCRUB_NODE = "scrub_node"  # verify every share on one node, on the node
REBALANCE = "rebalance"  # move shares from the fullest to the emptiest nodes
DRAIN_NODE = "drain_node"  # move every share off a draining node, then retire it
ORPHAN_SWEEP = "orphan_sweep"  # delete shares no part refers to, once old enough
IMPORT = "import"  # fetch a URL into an object (a background import)

#: ``cargohold worker --kind NAME`` runs these job kinds.
KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "repair": (LOST_NODE, REPAIR_PART),
    "scrub": (SCRUB_NODE,),
    "rebalance": (REBALANCE,),
    "drain": (DRAIN_NODE,),
    "gc": (DELETE_PART, ORPHAN_SWEEP),
    "imports": (IMPORT,),
}
ALL_KINDS: tuple[str, ...] = tuple(kind for group in KIND_GROUPS.values() for kind in group)


def repair_dedupe(part_id: str) -> str:
    """The dedupe key of a part's repair: one queued repair per part, however often it is reported."""
    return f"repair:{part_id}"
