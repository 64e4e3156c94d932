"""Throttling of guessable secrets: passwords at sign-in and on share links.

Every guess passes :meth:`Throttle.admit` before its password is checked.
Admitting counts the guess as a failure on all of its keys in one
transaction (see ``metadata/repositories/throttles.py``), or refuses it with
``TooManyAttempts`` (429, ``Retry-After``) if one key is blocked, so N
parallel guesses get at most ``limit`` password checks. A right password
then takes its count back (:meth:`Throttle.passed`). Counts live in the
metadata store, so every gateway sees them.

Each guess is counted on three kinds of key, with their own numbers
(``docs/accounts.md`` lists them):

* **pair**, one subject from one address: strict, long blocks. Only the
  guesser's own address suffers.
* **subject**, one user or link from any address: a higher limit and a
  short, capped block, because anyone who knows a user name can trigger it;
  it bounds guessing from many addresses without locking the owner out for
  long.
* **address**, one address across every user name (sign-in only): catches
  one client spraying a password over many accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from cargohold.domain.throttling import Policy
from cargohold.errors import TooManyAttempts
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import throttles as repo

#: Failures one subject may have from one address before it is blocked (``login_max_failures``).
DEFAULT_LIMIT = 5
#: A subject from anywhere, and one address across subjects, take this many times more.
SHARED_FACTOR = 4
FIRST_BLOCK = 30
PAIR_MAX_BLOCK = 15 * 60
SUBJECT_MAX_BLOCK = 30
FORGET_AFTER = 3600


@dataclass(frozen=True, slots=True)
class Rules:
    pair: Policy
    subject: Policy
    address: Policy

    @classmethod
    def for_limit(cls, limit: int = DEFAULT_LIMIT) -> Rules:
        shared = limit * SHARED_FACTOR
        return cls(
            pair=Policy(limit, FIRST_BLOCK, PAIR_MAX_BLOCK, FORGET_AFTER),
            subject=Policy(shared, FIRST_BLOCK, SUBJECT_MAX_BLOCK, FORGET_AFTER),
            address=Policy(shared, FIRST_BLOCK, PAIR_MAX_BLOCK, FORGET_AFTER),
        )


@dataclass(frozen=True, slots=True)
class Guard:
    """One key a guess is counted on; ``forget`` says whether a right password clears it."""

    key: str
    policy: Policy
    forget: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """An admitted guess, already counted as a failure until :meth:`Throttle.passed`."""

    guards: tuple[Guard, ...]


class Throttle:
    def __init__(self, db: Database, *, limit: int = DEFAULT_LIMIT, rules: Rules | None = None) -> None:
        self._db = db
        self.rules = rules or Rules.for_limit(limit)

    def login(self, user_name: str, address: str | None) -> tuple[Guard, ...]:
        """The keys of a guess at an account's password (sign-in and password change alike).

        A right password proves the owner: it clears the user's counts, but
        only takes its own guess back from the address (which may be spraying
        with one account it knows).
        """
        addr = address or "unknown"  # addresses hold no '/', so the pair key splits one way
        return (
            Guard(f"login:pair:{addr}/{user_name}", self.rules.pair, forget=True),
            Guard(f"login:user:{user_name}", self.rules.subject, forget=True),
            Guard(f"login:addr:{addr}", self.rules.address, forget=False),
        )

    def share_link(self, link_id: str, address: str | None) -> tuple[Guard, ...]:
        """The keys of a guess at a share link's password.

        A link's password is known to everyone it was given to, so one of
        them typing it right proves nothing about other addresses: the
        link-wide count only takes that guess back.
        """
        addr = address or "unknown"
        return (
            Guard(f"share:pair:{addr}/{link_id}", self.rules.pair, forget=True),
            Guard(f"share:link:{link_id}", self.rules.subject, forget=False),
        )

    async def admit(self, *guards: Guard) -> Attempt:
        """Count a guess on every key, or refuse it (``TooManyAttempts``) if one is blocked."""
        unique = tuple({guard.key: guard for guard in guards}.values())
        now = datetime.now(UTC)
        pairs = [(guard.key, guard.policy) for guard in unique]
        until = await self._db.write(lambda conn: repo.admit(conn, pairs, now))
        if until is not None:
            # From the time of the answer: this guess may have waited on the row lock of the one
            # that set the block, and so have read the clock before that block began.
            wait = max(1, math.ceil((until - datetime.now(UTC)).total_seconds()))
            raise TooManyAttempts(f"too many failed attempts; try again in {wait} s", retry_after=wait)
        return Attempt(unique)

    async def passed(self, attempt: Attempt) -> None:
        """The guess was right: forget or take back what :meth:`admit` counted."""
        forget = [guard.key for guard in attempt.guards if guard.forget]
        take_back = [guard.key for guard in attempt.guards if not guard.forget]
        await self._db.write(lambda conn: repo.passed(conn, forget, take_back))
