"""Buckets as namespaces: creating, listing and deleting them, versioning and grants.

Every operation acts for a :class:`Principal` and is checked by the access
service: any user may create a bucket (and owns it); deleting one, switching
its versioning and managing its grants need ``admin`` on it.
"""

from __future__ import annotations

from cargohold.domain.model import Bucket, Principal
from cargohold.errors import InvalidArgument, NoSuchGrant, NoSuchUser
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.grants import GrantRecord
from cargohold.service.access import AccessService, Level
from cargohold.service.buckets import BucketService

VERSIONING_STATES = {"enabled": "enabled", "on": "enabled", "suspended": "suspended", "off": "suspended"}


class NamespaceService:
    def __init__(self, db: Database, buckets: BucketService, access: AccessService) -> None:
        self._db = db
        self._buckets = buckets
        self._access = access

    async def create(self, who: Principal, name: str, layout: str | None = None) -> Bucket:
        return await self._buckets.create(name, who.user_id, layout)

    async def visible(self, who: Principal) -> list[Bucket]:
        return await self._access.visible_buckets(who)

    async def get(self, who: Principal, name: str) -> Bucket:
        return await self._access.bucket(who, name, Level.READ)

    async def delete(self, who: Principal, name: str) -> Bucket:
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        await self._buckets.delete(bucket)
        self._access.forget(bucket_id=bucket.id)
        return bucket

    async def set_versioning(self, who: Principal, name: str, state: str) -> Bucket:
        """Turn versioning on (``enabled``) or off (``suspended``: existing versions stay)."""
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        wanted = VERSIONING_STATES.get(state)
        if wanted is None:
            raise InvalidArgument(
                "versioning must be 'enabled' or 'suspended' (or on/off)", field="versioning"
            )
        if bucket.versioning == "off" and wanted == "suspended":
            return bucket  # never enabled: nothing to suspend
        return await self._buckets.set_versioning(bucket, wanted)

    # -- grants -------------------------------------------------------------------

    async def grants(self, who: Principal, name: str) -> list[GrantRecord]:
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        async with self._db.read() as conn:
            return await repo.list_grants(conn, bucket.id)

    async def grant(self, who: Principal, name: str, user_name: str, level: Level) -> GrantRecord:
        """Give ``user_name`` exactly ``level`` on the bucket (replacing an earlier grant)."""
        bucket = await self._access.bucket(who, name, Level.ADMIN)

        async def store(conn):  # type: ignore[no-untyped-def]
            user = await repo.get_user_by_name(conn, user_name)
            if user is None:
                raise NoSuchUser(f"no user {user_name!r}", user=user_name)
            if user.id == bucket.owner_id:
                raise InvalidArgument(f"{user_name!r} owns bucket {name!r} already", field="user")
            await repo.set_grant(conn, bucket.id, user.id, level.label, who.user_id)
            return next(g for g in await repo.list_grants(conn, bucket.id) if g.user_id == user.id)

        granted: GrantRecord = await self._db.write(store)
        self._access.forget(bucket_id=bucket.id, user_id=granted.user_id)
        return granted

    async def revoke(self, who: Principal, name: str, user_name: str) -> GrantRecord:
        bucket = await self._access.bucket(who, name, Level.ADMIN)

        async def remove(conn):  # type: ignore[no-untyped-def]
            user = await repo.get_user_by_name(conn, user_name)
            found = [g for g in await repo.list_grants(conn, bucket.id) if user and g.user_id == user.id]
            if not found:
                raise NoSuchGrant(f"{user_name!r} holds no grant on bucket {name!r}", user=user_name)
            await repo.delete_grant(conn, bucket.id, found[0].user_id)
            return found[0]

        revoked: GrantRecord = await self._db.write(remove)
        self._access.forget(bucket_id=bucket.id, user_id=revoked.user_id)
        return revoked
