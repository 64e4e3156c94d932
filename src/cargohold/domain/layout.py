"""Layouts: how one part's bytes become blocks and shares, and the arithmetic of ranges.

A *layout* names a redundancy mode and its parameters. It is stored with every
part, so the cluster default can change without rewriting old data.

* ``ec:K+M``  -- Reed-Solomon: each block is cut into K equal data shares plus
  M parity shares, one share per node (default ``ec:5+2``).
* ``mirror:R`` -- R full copies of every block (treated as K=1, M=R-1).
* ``stripe:K`` -- K data shares and no parity (K+0).

Blocks are ``block_size`` bytes (the last one of a part may be shorter). The
block size is a multiple of K so every data share of a full block is equal.
This module is pure: no I/O, no codec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cargohold.errors import InvalidLayout

#: Target block size; the real one is rounded so K data shares are equal and 4 KiB aligned.
TARGET_BLOCK_SIZE = 1024 * 1024
SHARE_ALIGN = 4096
MAX_WIDTH = 32

_SPEC = re.compile(r"(ec):([1-9][0-9]?)\+([1-9][0-9]?)|(mirror):([1-9][0-9]?)|(stripe):([1-9][0-9]?)")


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" for c in word)


def _numbers(low: int, high: int) -> str:
    return "(" + "|".join(str(n) for n in range(high, low - 1, -1)) + ")"


#: Exactly the specs ``Layout.parse`` accepts, as a regular expression for the API's
#: document: ec:K+M with K, M >= 1 and K+M <= 32, mirror:R and stripe:K with 1-32, in any case.
LAYOUT_PATTERN = (
    f"^({_any_case('ec')}:("
    + "|".join(f"{k}\\+{_numbers(1, MAX_WIDTH - k)}" for k in range(1, MAX_WIDTH))
    + f")|{_any_case('mirror')}:{_numbers(1, MAX_WIDTH)}|{_any_case('stripe')}:{_numbers(1, MAX_WIDTH)})$"
)


@dataclass(frozen=True, slots=True)
class Layout:
    mode: str  # "ec" | "mirror" | "stripe"
    k: int
    m: int
    block_size: int

    @property
    def width(self) -> int:
        """Number of shares (and distinct nodes) per part."""
        return self.k + self.m

    @property
    def write_quorum(self) -> int:
        """Shares that must be durable before a write is acknowledged (k+1, or k without parity)."""
        return self.k + 1 if self.m > 0 else self.k

    @property
    def spec(self) -> str:
        if self.mode == "ec":
            return f"ec:{self.k}+{self.m}"
        if self.mode == "mirror":
            return f"mirror:{self.k + self.m}"
        return f"stripe:{self.k}"

    def blocks_in(self, size: int) -> int:
        """Number of blocks a part of ``size`` bytes is cut into (0 for an empty part)."""
        return -(-size // self.block_size)

    def block_length(self, size: int, index: int) -> int:
        """Length of block ``index`` of a part of ``size`` bytes."""
        start = index * self.block_size
        return max(0, min(self.block_size, size - start))

    @classmethod
    def parse(cls, spec: str, block_size: int | None = None) -> Layout:
        match = _SPEC.fullmatch(spec.lower())
        if not match:
            raise InvalidLayout(f"layout {spec!r} is not one of ec:K+M, mirror:R, stripe:K")
        if match.group(1):
            k, m, mode = int(match.group(2)), int(match.group(3)), "ec"
            if m == 0:
                raise InvalidLayout("ec layouts need at least one parity share; use stripe:K")
        elif match.group(4):
            k, m, mode = 1, int(match.group(5)) - 1, "mirror"
        else:
            k, m, mode = int(match.group(7)), 0, "stripe"
        if k < 1 or m < 0 or k + m > MAX_WIDTH or (mode == "mirror" and k + m < 1):
            raise InvalidLayout(f"layout {spec!r} needs 1 <= shares <= {MAX_WIDTH}")
        return cls(mode=mode, k=k, m=m, block_size=block_size or default_block_size(k))


def default_block_size(k: int) -> int:
    """About 1 MiB, rounded up so each of the k data shares is a whole number of 4 KiB pages."""
    per_share = -(-TARGET_BLOCK_SIZE // k)
    per_share = -(-per_share // SHARE_ALIGN) * SHARE_ALIGN
    return per_share * k


@dataclass(frozen=True, slots=True)
class BlockSpan:
    """The blocks that cover a byte range of a part, and where the range sits in them."""

    first_block: int
    last_block: int  # inclusive
    skip: int  # bytes to drop from the start of the first block
    length: int  # bytes of the range


def block_span(layout: Layout, size: int, start: int, length: int) -> BlockSpan | None:
    """Map bytes [start, start+length) of a part of ``size`` bytes to the blocks that hold them."""
    if length <= 0 or start >= size:
        return None
    length = min(length, size - start)
    first = start // layout.block_size
    last = (start + length - 1) // layout.block_size
    return BlockSpan(first, last, start - first * layout.block_size, length)
