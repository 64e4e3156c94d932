"""Deterministic test data of any size (incompressible, cheap to regenerate)."""

from __future__ import annotations

import hashlib


def sample(size: int, seed: int = 1) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])
