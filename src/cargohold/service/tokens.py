"""Access tokens (JWT, HS256) and the format of refresh tokens: pure functions, no I/O.

An access token is short-lived and verified without a database round trip
(only its refresh family's revocation is looked up, and cached). Its claims:
``sub`` (user id, a string as RFC 7519 wants), ``name``, ``sid`` (the refresh
family it was issued under), ``typ`` = ``"access"``, ``iat``, ``exp``, ``iss``.
The role is deliberately not a claim: it is read from the user record, so a
demotion takes effect without waiting for tokens to expire.

Every gateway of a cluster must verify every token, so the signing key is
derived from configuration they share: ``token_secret`` when set, otherwise
the cluster secret. Either is stretched through HMAC-SHA256 with a fixed
label, which gives a 32-byte key whatever the secret's length and keeps the
key distinct from the cluster secret itself (nodes see that one).

A refresh token is opaque: ``<id>.<secret>``; only a SHA-256 of the secret is
stored (the secret has 256 bits of entropy, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from cargohold.errors import Unauthorized

ISSUER = "cargohold"
ALGORITHM = "HS256"
ACCESS = "access"
_KEY_LABEL = b"cargohold access-token signing key v1"
_REQUIRED_CLAIMS = ["sub", "name", "sid", "typ", "iat", "exp", "iss"]


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid access token"


class TokenExpired(Unauthorized):
    code = "token_expired"
    title = "Access token expired"


def signing_key(token_secret: str | None, cluster_secret: str | None) -> bytes:
    """The HS256 key: derived from ``token_secret``, else from the cluster secret."""
    secret = token_secret or cluster_secret
    if not secret:
        raise ValueError("access tokens need a token secret or a cluster secret")
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def looks_like_jwt(token: str) -> bool:
    """JWTs have three dot-separated parts; API keys (``<key_id>.<secret>``) have two."""
    return token.count(".") == 2


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    name: str
    session: str  # the refresh family
    issued_at: datetime
    expires_at: datetime


class TokenSigner:
    """Issues and verifies access tokens with one key and one lifetime."""

    def __init__(self, key: bytes, ttl: float, issuer: str = ISSUER) -> None:
        self._key = key
        self._ttl = timedelta(seconds=ttl)
        self._issuer = issuer

    @property
    def ttl_seconds(self) -> int:
        return max(1, round(self._ttl.total_seconds()))

    def issue(self, user_id: int, name: str, session: str, now: datetime | None = None) -> str:
        """A signed access token for ``user_id`` in refresh family ``session``."""
        issued = (now or datetime.now(UTC)).timestamp()
        claims = {
            "sub": str(user_id),
            "name": name,
            "sid": session,
            "typ": ACCESS,
            "iat": math.floor(issued),
            # Rounded up: a token is never valid for less than the whole lifetime.
            "exp": math.ceil(issued + self.ttl_seconds),
            "iss": self._issuer,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, now: datetime | None = None) -> AccessClaims:
        """The claims of a valid token; ``TokenExpired`` or ``InvalidToken`` otherwise.

        The signature is checked before any claim, so a tampered token is
        ``invalid_token`` even when it is also expired.
        """
        options: dict[str, object] = {"require": _REQUIRED_CLAIMS}
        if now is not None:
            options["verify_exp"] = False  # checked below against the given clock
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the access token has expired: refresh it or sign in again") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the access token is not valid: {exc}") from exc
        return _claims(claims, now)


def _claims(claims: dict[str, object], now: datetime | None) -> AccessClaims:
    sub, name, sid, exp, iat = (claims.get(k) for k in ("sub", "name", "sid", "exp", "iat"))
    if (
        claims.get("typ") != ACCESS
        or not isinstance(sub, str)
        or not sub.isdigit()
        or not isinstance(name, str)
        or not isinstance(sid, str)
        or not isinstance(exp, int)
        or not isinstance(iat, int)
    ):
        raise InvalidToken("the access token's claims are malformed")
    expires = datetime.fromtimestamp(exp, UTC)
    if now is not None and expires <= now:
        raise TokenExpired("the access token has expired: refresh it or sign in again")
    return AccessClaims(int(sub), name, sid, datetime.fromtimestamp(iat, UTC), expires)


# -- refresh tokens ------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id() -> str:
    """An id for a refresh token or a family: 128 random bits, 32 hex characters."""
    return secrets.token_hex(16)


def new_refresh_secret() -> str:
    return secrets.token_urlsafe(32)


def split_refresh_token(token: object) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed refresh token, else None."""
    if not isinstance(token, str):
        return None
    token_id, sep, secret = token.partition(".")
    if not sep or len(token_id) != 32 or not secret or "." in secret or len(secret) > 200:
        return None
    return token_id, secret
