"""Password hashing: argon2id through argon2-cffi, off the event loop.

argon2-cffi's defaults are RFC 9106's low-memory profile (t=3, 64 MiB, p=4):
about 50 ms of one core per hash here, which is the point. Hashes run in the
CPU pool so a burst of sign-ins slows sign-ins, not object traffic.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cargohold.concurrency import run_cpu
from cargohold.errors import InvalidArgument

MIN_LENGTH = 8
MAX_LENGTH = 1024

_hasher = PasswordHasher()
# Verified when the user does not exist, so an unknown name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anybody")


def check_password_rules(password: object) -> str:
    """The password, if acceptable as a new password (``InvalidArgument`` otherwise)."""
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidArgument(
            f"password must be a string of {MIN_LENGTH} to {MAX_LENGTH} characters", field="password"
        )
    return password


async def hash_password(password: str) -> str:
    return await run_cpu(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; a missing hash (no password set) never matches."""

    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await run_cpu(verify)
