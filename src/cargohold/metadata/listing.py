"""S3-style listing: prefix, delimiter grouping and cursor pagination, as pure logic.

The SQL adapter (``repositories.objects.list_objects``) and the tests drive
the same :class:`Lister` over keys in code-point order, so the grouping rules
live in one place that Hypothesis checks against a brute-force reference.

Rules (those of S3 ListObjectsV2):

* only keys starting with ``prefix`` are listed;
* with a ``delimiter``, a key whose remainder after ``prefix`` contains it is
  rolled up into the *common prefix* ``prefix + remainder[:first delimiter]``
  (delimiter included), returned once instead of its keys;
* objects and common prefixes together count toward ``limit``, in key order;
* ``next_cursor`` is the last key or common prefix returned when more entries
  follow, else ``None``; listing again from it continues exactly after it.
  A cursor equal to a common prefix skips that whole group; any other cursor
  means "keys strictly greater than this".

Skipping a group must not read its keys one by one (a "directory" may hold
millions): after a group is emitted the reader seeks to the smallest string
above every key in it, :func:`prefix_successor`.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_CHAR = "\U0010ffff"
MAX_BATCH = 1000


def prefix_successor(prefix: str) -> str | None:
    """The smallest valid key greater than every key starting with ``prefix``.

    ``None`` when there is none (empty prefix, or only U+10FFFF characters).
    Surrogates are skipped: they cannot occur in UTF-8 keys.
    """
    stem = prefix.rstrip(MAX_CHAR)
    if not stem:
        return None
    nxt = ord(stem[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return stem[:-1] + chr(nxt)


@dataclass(frozen=True, slots=True)
class Seek:
    """Where reading resumes: keys ``>= key`` (inclusive) or ``> key``."""

    key: str
    inclusive: bool

    def later(self, other: Seek) -> Seek:
        """The more restrictive of two lower bounds."""
        if self.key != other.key:
            return self if self.key > other.key else other
        return self if not self.inclusive else other


class Step(enum.Enum):
    OBJECT = "object"  # list this key as an object
    PREFIX = "prefix"  # a new common prefix was recorded; do not list the key
    SKIP = "skip"  # key is inside the prefix just recorded: stop this batch, seek
    STOP = "stop"  # page is full and more entries follow


def common_prefix(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix ``key`` rolls up into, or ``None`` if it is listed itself."""
    if not delimiter or not key.startswith(prefix):
        return None
    cut = key.find(delimiter, len(prefix))
    if cut < 0:
        return None
    return key[: cut + len(delimiter)]


@dataclass(slots=True)
class Lister:
    """Consumes keys in order and decides what one listing page contains.

    Drive it like this: read keys from ``position`` (below ``upper`` when set)
    in code-point order, at most ``wanted()`` at a time; ``feed`` each one;
    re-read from ``position`` after a ``SKIP`` or a full batch; call
    ``exhausted()`` when a read comes back short; stop when ``done``.
    """

    prefix: str
    delimiter: str | None
    limit: int
    cursor: str | None = None
    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    done: bool = False
    position: Seek = field(init=False)
    upper: str | None = field(init=False)
    _last: str | None = field(default=None, init=False)
    _group: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.delimiter = self.delimiter or None
        self.upper = prefix_successor(self.prefix) if self.prefix else None
        self.position = Seek(self.prefix, inclusive=True)
        if self.cursor is not None:
            group = common_prefix(self.cursor, self.prefix, self.delimiter)
            if group is not None and group == self.cursor:
                after = prefix_successor(group)
                if after is None:
                    self.done = True
                    return
                self.position = self.position.later(Seek(after, inclusive=True))
            else:
                self.position = self.position.later(Seek(self.cursor, inclusive=False))
        if self.limit <= 0 or (self.upper is not None and self.position.key >= self.upper):
            self.done = True

    @property
    def entries(self) -> int:
        return len(self.keys) + len(self.prefixes)

    def wanted(self) -> int:
        """How many keys the next read should fetch (one extra detects truncation)."""
        return max(1, min(MAX_BATCH, self.limit - self.entries + 1))

    def feed(self, key: str) -> Step:
        if self._group is not None and key.startswith(self._group):
            return Step.SKIP
        if self.entries >= self.limit:
            self.truncated = True
            self.done = True
            return Step.STOP
        group = common_prefix(key, self.prefix, self.delimiter)
        if group is None:
            self.keys.append(key)
            self._last = key
            self._group = None
            self.position = Seek(key, inclusive=False)
            return Step.OBJECT
        self.prefixes.append(group)
        self._last = group
        self._group = group
        after = prefix_successor(group)
        if after is None:
            self.done = True  # every remaining key is inside this group
            return Step.PREFIX
        self.position = Seek(after, inclusive=True)
        return Step.PREFIX

    def exhausted(self) -> None:
        """The last read returned fewer keys than asked: nothing more to list."""
        self.done = True

    @property
    def next_cursor(self) -> str | None:
        return self._last if self.truncated else None


@dataclass(frozen=True, slots=True)
class ListingPage:
    keys: list[str]
    prefixes: list[str]
    next_cursor: str | None
    reads: int = 0  # how many range reads it took (tests check seeking)


def list_sorted(
    sorted_keys: Sequence[str],
    prefix: str = "",
    delimiter: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> ListingPage:
    """Run a :class:`Lister` over an in-memory sorted key list (fakes and tests)."""
    lister = Lister(prefix, delimiter, limit, cursor)
    reads = 0
    while not lister.done:
        reads += 1
        bisector = bisect.bisect_left if lister.position.inclusive else bisect.bisect_right
        start = bisector(sorted_keys, lister.position.key)
        stop = len(sorted_keys) if lister.upper is None else bisect.bisect_left(sorted_keys, lister.upper)
        want = lister.wanted()
        batch = sorted_keys[start : min(stop, start + want)]
        for key in batch:
            if lister.feed(key) in (Step.SKIP, Step.STOP):
                break
        else:
            if len(batch) < want:
                lister.exhausted()
    return ListingPage(lister.keys, lister.prefixes, lister.next_cursor, reads)
