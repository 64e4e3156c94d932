"""S3-style listing: prefix, delimiter grouping and cursor pagination, as pure logic.

The SQL adapter (``repositories.object_listing``) and the tests drive the
same :class:`Lister` over keys in code-point order (which is UTF-8 byte
order), so the grouping rules live in one place that Hypothesis checks
against a brute-force reference.

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
above every key in it, :func:`prefix_successor`. A page is then one seek per
entry it returns, whatever the bucket holds. :func:`walk_seek` is that rule
for one key, in the form the SQL adapter evaluates inside the database (a
whole page in one statement); :func:`walk_sorted` runs it over a sorted
list, so the tests check it against the reference too.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_CHAR = "\U0010ffff"


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


def group_bump(delimiter: str) -> str | None:
    """What ends the seek past a common prefix, in place of its delimiter.

    For every common prefix ``group`` ending in ``delimiter``,
    ``prefix_successor(group) == group[: -len(delimiter)] + group_bump(delimiter)``,
    so the seek needs no arithmetic on characters, only a cut and a join.
    ``None`` when the delimiter is made of U+10FFFF alone: the successor then
    reaches into the group's own characters and a reader must compute it per
    group (:func:`prefix_successor`).
    """
    return prefix_successor(delimiter)


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
    upper: str | None = field(init=False)
    # ``position``, kept as two plain fields: ``feed`` runs a thousand times a page.
    _seek_key: str = field(default="", init=False)
    _seek_inclusive: bool = field(default=True, init=False)
    _count: int = field(default=0, init=False)
    _last: str | None = field(default=None, init=False)
    _group: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.delimiter = self.delimiter or None
        self.upper = prefix_successor(self.prefix) if self.prefix else None
        position = Seek(self.prefix, inclusive=True)
        if self.cursor is not None:
            group = common_prefix(self.cursor, self.prefix, self.delimiter)
            if group is not None and group == self.cursor:
                after = prefix_successor(group)
                if after is None:
                    self.done = True
                    return
                position = position.later(Seek(after, inclusive=True))
            else:
                position = position.later(Seek(self.cursor, inclusive=False))
        self._seek_key, self._seek_inclusive = position.key, position.inclusive
        if self.limit <= 0 or (self.upper is not None and position.key >= self.upper):
            self.done = True

    @property
    def position(self) -> Seek:
        """Where the next key may be: the lower bound of the next read."""
        return Seek(self._seek_key, self._seek_inclusive)

    @property
    def entries(self) -> int:
        return self._count

    def wanted(self) -> int:
        """How many entries the page still needs, plus one that tells whether more follow."""
        return max(1, self.limit - self._count + 1)

    def feed(self, key: str) -> Step:
        """Take the next key in order; ``position`` then says where the following key may be."""
        if self._group is not None and key.startswith(self._group):
            return Step.SKIP
        if self._count >= self.limit:
            self.truncated = True
            self.done = True
            return Step.STOP
        self._count += 1
        group = common_prefix(key, self.prefix, self.delimiter) if self.delimiter else None
        if group is None:
            self.keys.append(key)
            self._last = key
            self._group = None
            self._seek_key, self._seek_inclusive = key, False
            return Step.OBJECT
        self.prefixes.append(group)
        self._last = group
        self._group = group
        after = prefix_successor(group)
        if after is None:
            self.done = True  # every remaining key is inside this group
            return Step.PREFIX
        self._seek_key, self._seek_inclusive = after, True
        return Step.PREFIX

    def exhausted(self) -> None:
        """The last read returned fewer keys than asked: nothing more to list."""
        self.done = True

    @property
    def next_cursor(self) -> str | None:
        return self._last if self.truncated else None


def walk_seek(key: str, prefix: str, delimiter: str, bump: str) -> Seek:
    """Where the key after ``key`` may be, by the rule the SQL walk evaluates.

    ``key`` starts with ``prefix``. When its remainder holds ``delimiter``,
    ``key`` opened a common prefix and the next key is at or after that
    group's successor (``bump`` is :func:`group_bump` of the delimiter);
    otherwise it is any key after ``key``. Equal to what :meth:`Lister.feed`
    leaves in ``position``.
    """
    cut = key.find(delimiter, len(prefix))
    if cut < 0:
        return Seek(key, inclusive=False)
    return Seek(key[:cut] + bump, inclusive=True)


@dataclass(frozen=True, slots=True)
class ListingPage:
    keys: list[str]
    prefixes: list[str]
    next_cursor: str | None
    reads: int = 0  # how many range reads it took (tests check seeking)


def _first(sorted_keys: Sequence[str], seek: Seek, upper: str | None, count: int) -> Sequence[str]:
    """Up to ``count`` keys from ``seek`` on, below ``upper``."""
    bisector = bisect.bisect_left if seek.inclusive else bisect.bisect_right
    start = bisector(sorted_keys, seek.key)
    stop = len(sorted_keys) if upper is None else bisect.bisect_left(sorted_keys, upper)
    return sorted_keys[start : min(stop, start + count)]


def list_sorted(
    sorted_keys: Sequence[str],
    prefix: str = "",
    delimiter: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
    batch: int = 1000,
) -> ListingPage:
    """Run a :class:`Lister` over an in-memory sorted key list, ``batch`` keys per read."""
    lister = Lister(prefix, delimiter, limit, cursor)
    reads = 0
    while not lister.done:
        reads += 1
        want = min(batch, lister.wanted())
        keys = _first(sorted_keys, lister.position, lister.upper, want)
        for key in keys:
            if lister.feed(key) in (Step.SKIP, Step.STOP):
                break
        else:
            if len(keys) < want:
                lister.exhausted()
    return ListingPage(lister.keys, lister.prefixes, lister.next_cursor, reads)


def walk_sorted(
    sorted_keys: Sequence[str],
    prefix: str = "",
    delimiter: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> ListingPage:
    """A page the way the SQL walk reads it: one seek per entry, by :func:`walk_seek` alone.

    The walk never asks the :class:`Lister` where to go: it finds the next
    key from the previous one, as the database does, and the lister only
    decides what each key is. ``reads`` counts the seeks. ``ValueError`` for
    a delimiter the walk cannot express (see :func:`group_bump`).
    """
    lister = Lister(prefix, delimiter, limit, cursor)
    bump = group_bump(lister.delimiter) if lister.delimiter else None
    if lister.delimiter and bump is None:
        raise ValueError("a delimiter of U+10FFFF alone has no walk")
    seek, reads = lister.position, 0
    while not lister.done:
        reads += 1
        found = _first(sorted_keys, seek, lister.upper, 1)
        if not found:
            lister.exhausted()
            break
        key = found[0]
        if lister.feed(key) is Step.SKIP:
            raise AssertionError(f"the walk stepped into a group it had left: {key!r}")
        if lister.delimiter and bump is not None:
            seek = walk_seek(key, prefix, lister.delimiter, bump)
        else:
            seek = Seek(key, inclusive=False)
    return ListingPage(lister.keys, lister.prefixes, lister.next_cursor, reads)
