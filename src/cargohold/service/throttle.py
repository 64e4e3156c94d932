"""Throttling of guessable secrets: passwords at sign-in and on share links.

Failures are counted in the metadata store, so every gateway sees them, per
subject (a user name, a link) and per client address. After ``limit``
failures within ``window`` the key is blocked for ``base_block``, doubling
with each further failure; while blocked, attempts are refused with
``TooManyAttempts`` (429, ``Retry-After``) before any password is checked.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from cargohold.errors import TooManyAttempts
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import throttles as repo


def login_subjects(user_name: str, address: str | None) -> tuple[str, str]:
    """The throttle keys of a password guess for an account: per user name and per client address.

    Sign-ins and password changes share them: both are guesses at the same password.
    """
    return f"login:user:{user_name}", f"login:addr:{address or 'unknown'}"


class Throttle:
    def __init__(
        self,
        db: Database,
        *,
        limit: int = 5,
        window: timedelta = timedelta(minutes=15),
        base_block: timedelta = timedelta(seconds=30),
    ) -> None:
        self._db = db
        self._limit = limit
        self._window = window
        self._base_block = base_block

    async def check(self, *keys: str) -> None:
        """``TooManyAttempts`` if any of ``keys`` is blocked now."""
        now = datetime.now(UTC)
        async with self._db.read() as conn:
            until = await repo.blocked_until(conn, list(keys), now)
        if until is not None:
            raise _refusal(until, now)

    async def failed(self, *keys: str) -> None:
        """Count a failure against every key (call after a wrong password)."""
        now = datetime.now(UTC)

        async def record(conn):  # type: ignore[no-untyped-def]
            for key in keys:
                await repo.record_failure(conn, key, now, self._window, self._limit, self._base_block)

        await self._db.write(record)

    async def succeeded(self, *keys: str) -> None:
        """Forget the failures of ``keys`` (the right password was given)."""

        async def clear(conn):  # type: ignore[no-untyped-def]
            for key in keys:
                await repo.clear(conn, key)

        await self._db.write(clear)


def _refusal(until: datetime, now: datetime) -> TooManyAttempts:
    wait = max(1, math.ceil((until - now).total_seconds()))
    return TooManyAttempts(f"too many failed attempts; try again in {wait} s", retry_after=wait)
