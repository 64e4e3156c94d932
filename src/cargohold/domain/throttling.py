"""How failed password guesses turn into blocks (pure arithmetic, no clock, no store).

A throttle key (a user from one address, a user from anywhere, a share
link ...) has a :class:`Policy`: after ``limit`` counted failures it is
blocked for ``first_block`` seconds, doubling with each further failure up to
``max_block``. The count is forgotten once ``forget_after`` seconds pass
without a failure. Everything is computed in whole seconds with bounded
integers, so no number of failures can overflow a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The count stops growing here: far past any limit, well inside a 32-bit column.
MAX_COUNT = 1_000_000
#: More doublings than any block cap needs (30 s << 20 is 12 days).
_MAX_DOUBLINGS = 20


@dataclass(frozen=True, slots=True)
class Policy:
    """The numbers of one kind of throttle key (see ``docs/accounts.md``)."""

    limit: int
    first_block: int  # seconds
    max_block: int  # seconds
    forget_after: int = 3600  # seconds without a failure

    def __post_init__(self) -> None:
        if not (1 <= self.limit <= MAX_COUNT and 1 <= self.first_block <= self.max_block):
            raise ValueError(f"unusable throttle policy {self}")

    def block_seconds(self, failures: int) -> int:
        """How long a key with ``failures`` counted failures is blocked (0: not blocked)."""
        if failures < self.limit:
            return 0
        doublings = min(failures - self.limit, _MAX_DOUBLINGS)
        return min(self.first_block << doublings, self.max_block)


@dataclass(frozen=True, slots=True)
class Count:
    """What the store keeps per key."""

    failures: int
    last_failure: datetime
    blocked_until: datetime | None


def blocked(count: Count, now: datetime) -> datetime | None:
    """The end of ``count``'s block if it is blocked at ``now``."""
    if count.blocked_until is not None and count.blocked_until > now:
        return count.blocked_until
    return None


def count_attempt(policy: Policy, count: Count | None, now: datetime) -> Count:
    """The key's state once an attempt is admitted: counted as a failure in advance.

    Counting before the password is checked is what makes the limit hold
    under concurrency: the ``limit``-th admitted attempt already sets the
    block, so a parallel burst gets exactly ``limit`` checks. A right
    password takes its count back afterwards
    (``metadata.repositories.throttles.passed``).
    """
    fresh = count is None or now - count.last_failure >= timedelta(seconds=policy.forget_after)
    failures = 1 if fresh or count is None else min(count.failures, MAX_COUNT - 1) + 1
    block = policy.block_seconds(failures)
    return Count(failures, now, now + timedelta(seconds=block) if block else None)
