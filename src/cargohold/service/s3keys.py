"""S3 access keys: what SigV4 clients (aws cli, boto3, rclone) sign their requests with.

An API key's secret is stored as a hash, but SigV4 is an HMAC over each
request keyed by (a derivation of) the secret, so the gateway must hold the
secret itself. It is stored encrypted with AES-GCM (``cryptography``'s
``AESGCM``) under a 256-bit key derived by HKDF-SHA256 from the cluster
secret, a fresh 96-bit nonce per row, and the access key id as associated
data: a copied database file alone yields no secret, and a ciphertext moved
to another row does not open. Changing the cluster secret makes every S3 key
unusable (they must be created again).

The id and secret are shown once, at creation. ``secret_for`` is the lookup
every S3 request makes; rows are cached for ``cache_seconds`` like API keys,
so a revocation takes effect at once on the gateway that made it and within
``cache_seconds`` elsewhere. A disabled user's keys stop working as their
API keys do (the user record comes through :class:`AuthService`'s cache,
which disabling a user clears).
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cargohold.domain.model import Principal, S3Key
from cargohold.errors import Forbidden, InvalidAccessKeyId, InvalidArgument, NoSuchUser, NotFound
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import s3_keys as repo
from cargohold.metadata.repositories import users as users_repo
from cargohold.service.auth import AuthService, TtlCache

log = logging.getLogger(__name__)

#: HKDF ``info``: keys derived from the cluster secret for other purposes never equal this one.
HKDF_INFO = b"cargohold s3 secrets"
ACCESS_KEY_PREFIX = "CH"
ACCESS_KEY_LENGTH = 20
SECRET_LENGTH = 40
_ID_ALPHABET = string.ascii_uppercase + string.digits
NONCE_BYTES = 12


def new_access_key() -> tuple[str, str]:
    """A fresh (access key id, secret): 20 upper-case alphanumerics starting ``CH``; 40 url-safe chars."""
    tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX)))
    return ACCESS_KEY_PREFIX + tail, secrets.token_urlsafe(30)


class SecretBox:
    """Seals and opens secrets the server must read back (S3 secrets, webhook secrets) with a key
    derived from the cluster secret; ``info`` keeps each kind's key apart from the others'."""

    def __init__(self, cluster_secret: str, info: bytes = HKDF_INFO) -> None:
        if not cluster_secret:
            raise ValueError("secrets are encrypted under the cluster secret, which is not set")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(cluster_secret.encode())
        self._aead = AESGCM(key)

    def seal(self, owner_id: str, secret: str) -> tuple[bytes, bytes]:
        """(nonce, ciphertext) of ``secret``, bound to ``owner_id`` (the row's id) as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, secret.encode(), owner_id.encode())

    def open_sealed(self, owner_id: str, nonce: bytes, ciphertext: bytes) -> str:
        """The secret; ``InvalidTag`` if sealed under another cluster secret, for another row, or altered."""
        return self._aead.decrypt(nonce, ciphertext, owner_id.encode()).decode()

    def open(self, key: S3Key) -> str:
        """The key's secret; ``InvalidTag`` if it was sealed under another cluster secret or altered."""
        return self.open_sealed(key.access_key_id, key.secret_nonce, key.secret_ciphertext)


class S3KeyService:
    def __init__(
        self, db: Database, auth: AuthService, cluster_secret: str, cache_seconds: float = 5.0
    ) -> None:
        self._db = db
        self._auth = auth
        self._box = SecretBox(cluster_secret)
        self._cache: TtlCache[S3Key | None] = TtlCache(cache_seconds, revocations=auth.revocations)

    async def create(
        self,
        who: Principal,
        name: str = "s3 key",
        expires_at: datetime | None = None,
        for_user: str | None = None,
    ) -> tuple[S3Key, str]:
        """A new S3 key acting as ``who`` (admins: as ``for_user``); returns it and its secret, shown once."""
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expires_at must be in the future", field="expires_at")
        user_id = who.user_id
        if for_user is not None and for_user != who.name:
            if not who.is_admin:
                raise Forbidden("only an admin may create keys for another user")
            async with self._db.read() as conn:
                user = await users_repo.get_user_by_name(conn, for_user)
            if user is None:
                raise NoSuchUser(f"no user {for_user!r}", user=for_user)
            user_id = user.id
        return await self.create_for(user_id, name, expires_at)

    async def create_for(
        self, user_id: int, name: str, expires_at: datetime | None = None
    ) -> tuple[S3Key, str]:
        """Store a new key for a user (no permission check: start-up and :meth:`create` call it)."""
        access_key_id, secret = new_access_key()
        nonce, sealed = self._box.seal(access_key_id, secret)
        row = S3Key(access_key_id, user_id, name, nonce, sealed, datetime.now(UTC), expires_at)
        stored = await self._db.write(lambda conn: repo.create_s3_key(conn, row))
        return stored, secret

    async def list_keys(self, who: Principal, user_id: int | None = None) -> list[S3Key]:
        """The caller's S3 keys, or (admins) those of ``user_id``. Secrets are never listed."""
        if user_id is not None and user_id != who.user_id and not who.is_admin:
            raise Forbidden("only an admin may list another user's keys")
        async with self._db.read() as conn:
            return await repo.list_s3_keys(conn, who.user_id if user_id is None else user_id)

    async def get(self, who: Principal, access_key_id: str) -> S3Key | None:
        """One of the caller's keys (admins: anyone's), or None."""
        async with self._db.read() as conn:
            key = await repo.get_s3_key(conn, access_key_id)
        if key is None or not (who.is_admin or key.user_id == who.user_id):
            return None
        return key

    async def revoke(self, who: Principal, access_key_id: str) -> S3Key:
        """Revoke one of the caller's S3 keys (admins: anyone's); effective at once on this gateway."""
        if await self.get(who, access_key_id) is None:
            raise NoSuchS3Key(f"no S3 access key {access_key_id!r}", key_id=access_key_id)
        await self._db.write(lambda conn: repo.revoke_s3_key(conn, access_key_id))
        self._cache.drop(access_key_id)
        self._auth.revocations.bump()
        async with self._db.read() as conn:
            revoked = await repo.get_s3_key(conn, access_key_id)
        assert revoked is not None
        return revoked

    async def count(self) -> int:
        async with self._db.read() as conn:
            return await repo.count_s3_keys(conn)

    async def secret_for(self, access_key_id: str) -> tuple[Principal, str]:
        """Who an access key acts as, and its secret; ``InvalidAccessKeyId`` unless it is usable now."""
        key = await self._lookup(access_key_id)
        if key is None or not key.usable(datetime.now(UTC)):
            raise InvalidAccessKeyId(
                "the access key id is unknown, revoked or expired", access_key_id=access_key_id
            )
        user = await self._auth.user(key.user_id)
        if user is None or user.disabled:
            raise InvalidAccessKeyId("the access key's user is disabled", access_key_id=access_key_id)
        try:
            secret = self._box.open(key)
        except InvalidTag:
            log.error("S3 key %s cannot be opened: it was sealed under another cluster secret", access_key_id)
            raise InvalidAccessKeyId(
                "the access key cannot be used with this cluster's secret", access_key_id=access_key_id
            ) from None
        return Principal(user.id, user.name, user.role, key_id=access_key_id), secret

    async def _lookup(self, access_key_id: str) -> S3Key | None:
        cached = self._cache.get(access_key_id)
        if cached is not None:
            return cached[0]
        if len(access_key_id) > 32:  # longer than the column: no such key, no query
            return None
        async with self._db.read() as conn:
            key = await repo.get_s3_key(conn, access_key_id)
        if key is not None:  # unknown ids are not cached: a guesser must not fill memory
            self._cache.put(access_key_id, key.user_id, key)
        return key


class NoSuchS3Key(NotFound):
    code = "no_such_key_id"
    title = "S3 access key does not exist"


async def bootstrap_admin_key(service: S3KeyService, db: Database, admin_name: str) -> tuple[str, str] | None:
    """On a store without any S3 key: one for the first admin, (id, secret) to show once; else None."""
    if await service.count():
        return None
    async with db.read() as conn:
        admin = await users_repo.get_user_by_name(conn, admin_name)
    if admin is None:
        return None
    key, secret = await service.create_for(admin.id, "admin")
    return key.access_key_id, secret
