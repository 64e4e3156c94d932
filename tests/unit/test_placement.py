"""Placement: distinct nodes, zone spread, emptiest first, even fill over time."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cargohold.domain.placement import Candidate, choose_nodes
from cargohold.errors import InsufficientNodes


def _nodes(n: int, zones: int = 1, used: int = 0) -> list[Candidate]:
    return [Candidate(i, f"z{i % zones}", 10**12, used) for i in range(n)]


@given(n=st.integers(1, 20), width=st.integers(1, 20), zones=st.integers(1, 5))
def test_distinct_nodes_or_clear_error(n: int, width: int, zones: int) -> None:
    nodes = _nodes(n, zones)
    if width > n:
        with pytest.raises(InsufficientNodes):
            choose_nodes(nodes, width)
        return
    chosen = choose_nodes(nodes, width, random.Random(1))
    assert len(set(chosen)) == width
    used_zones = {nodes[i].zone for i in chosen}
    assert len(used_zones) == min(zones, width)


def test_spreads_over_zones_before_doubling_up() -> None:
    nodes = [Candidate(0, "a", 100, 0), Candidate(1, "a", 100, 0), Candidate(2, "b", 100, 50)]
    assert set(choose_nodes(nodes, 2, random.Random(0))) in ({0, 2}, {1, 2})


def test_equal_nodes_fill_evenly() -> None:
    rng = random.Random(7)
    used = {i: 0 for i in range(8)}
    for _ in range(500):
        size = rng.choice([10_000, 500_000, 3_000_000])
        candidates = [Candidate(i, "z", 10**12, used[i]) for i in used]
        for node in choose_nodes(candidates, 7, rng):
            used[node] += size // 5
    mean = statistics.mean(used.values())
    assert max(abs(u - mean) for u in used.values()) <= 0.02 * mean


def test_new_empty_nodes_take_writes_first() -> None:
    full = [Candidate(i, "z", 10**9, 5 * 10**8) for i in range(8)]
    empty = [Candidate(8, "z", 10**9, 0), Candidate(9, "z", 10**9, 0)]
    for _ in range(20):
        assert {8, 9} <= set(choose_nodes(full + empty, 7))
