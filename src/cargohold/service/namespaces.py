"""Buckets as namespaces: creating, listing and deleting them, versioning and grants.

Every operation acts for a :class:`Principal` and is checked by the access
service: any user may create a bucket (and owns it); reading its description
needs ``read``; deleting it, switching its versioning and managing its grants
need ``admin`` on it. The permission is always checked before the request's
own arguments, so a caller who may not see a bucket learns nothing about it
from a malformed request either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import Bucket, Principal
from cargohold.errors import Conflict, InvalidArgument, NoSuchGrant, NoSuchUser
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.grants import GrantRecord
from cargohold.service.access import AccessService, Level
from cargohold.service.buckets import BucketService
from cargohold.service.nodes import NodeRegistry


class LayoutTooWide(Conflict):
    """A layout whose writes need more nodes than the cluster has: every write to the bucket would
    be 503 until nodes are added, so the bucket is refused now, when the cause is plain."""

    code = "layout_too_wide"
    title = "The layout's writes need more nodes than the cluster has"


class OwnerGrant(Conflict):
    """A grant to the bucket's owner would lower nothing and add nothing: ownership is not a grant."""

    code = "owner_grant"
    title = "The bucket's owner always holds admin"


VERSIONING_STATES = {"enabled": "enabled", "on": "enabled", "suspended": "suspended", "off": "suspended"}


@dataclass(frozen=True, slots=True)
class BucketView:
    """A bucket as one caller sees it: who owns it and what the caller may do."""

    bucket: Bucket
    owner: str | None  # None only if the owner's account is gone
    level: Level


@dataclass(frozen=True, slots=True)
class GrantList:
    bucket: Bucket
    owner: str | None
    grants: list[GrantRecord]


class NamespaceService:
    def __init__(
        self, db: Database, buckets: BucketService, access: AccessService, nodes: NodeRegistry
    ) -> None:
        self._db = db
        self._buckets = buckets
        self._access = access
        self._nodes = nodes

    async def create(self, who: Principal, name: str, layout: str | None = None) -> Bucket:
        """A bucket owned by ``who``, with ``layout`` or the gateway's default.

        ``409 layout_too_wide`` when a write would need more nodes (the layout's write quorum)
        than the cluster has, lost and retired ones not counted.
        """
        spec = self._buckets.layout(layout)
        members = self._nodes.members()
        if spec.write_quorum > members:
            raise LayoutTooWide(
                f"layout {spec.spec} writes to at least {spec.write_quorum} nodes; the cluster has {members}",
                needed=spec.write_quorum,
                available=members,
            )
        return await self._buckets.create(name, who.user_id, layout)

    async def visible(self, who: Principal) -> list[Bucket]:
        """Buckets ``who`` owns or holds a grant on (admins: every bucket), by name."""
        return await self._access.visible_buckets(who)

    async def owners(self, buckets: list[Bucket]) -> dict[int, str]:
        """Owner names of ``buckets`` by bucket id, in one query (for listings)."""
        async with self._db.read() as conn:
            return await repo.owner_names(conn, (b.id for b in buckets))

    async def get(self, who: Principal, name: str) -> Bucket:
        return await self._access.bucket(who, name, Level.READ)

    async def describe(self, who: Principal, name: str) -> BucketView:
        """The bucket with its owner's name and the caller's level (404 if they cannot see it)."""
        bucket = await self._access.bucket(who, name, Level.READ)
        level = await self._access.level(who, bucket)
        assert level is not None  # bucket() let us see it
        owners = await self.owners([bucket])
        return BucketView(bucket, owners.get(bucket.id), level)

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

    async def grants(self, who: Principal, name: str) -> GrantList:
        """Who may do what to the bucket: its owner and every grant (needs ``admin``)."""
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        async with self._db.read() as conn:
            found = await repo.list_grants(conn, bucket.id)
            owners = await repo.owner_names(conn, [bucket.id])
        return GrantList(bucket, owners.get(bucket.id), found)

    async def grant(self, who: Principal, name: str, user_name: object, level: object) -> GrantRecord:
        """Give ``user_name`` exactly ``level`` on the bucket, replacing an earlier grant.

        ``user_name`` and ``level`` come straight from the request: they are
        checked only after the caller's own ``admin`` level.
        """
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        wanted = Level.parse(level)
        if not isinstance(user_name, str) or not user_name:
            raise InvalidArgument("user must be the name of a user", field="user")

        async def store(conn: AsyncConnection) -> GrantRecord:
            user = await repo.get_user_by_name(conn, user_name)
            if user is None:
                raise NoSuchUser(f"no user {user_name!r}", user=user_name)
            if user.id == bucket.owner_id:
                raise OwnerGrant(
                    f"{user_name!r} owns bucket {name!r}: an owner always holds admin", field="user"
                )
            return await repo.set_grant(conn, bucket.id, user.id, wanted.label, who.user_id)

        granted: GrantRecord = await self._db.write(store)
        self._access.forget(bucket_id=bucket.id, user_id=granted.user_id)
        return granted

    async def revoke(self, who: Principal, name: str, user_name: object) -> GrantRecord:
        """Take ``user_name``'s grant away; ``NoSuchGrant`` when they hold none.

        The access check comes first, so a stranger learns nothing from a bad argument.
        """
        bucket = await self._access.bucket(who, name, Level.ADMIN)
        if not isinstance(user_name, str) or not user_name:
            raise InvalidArgument("name the user whose grant to revoke", field="user")

        async def remove(conn: AsyncConnection) -> GrantRecord:
            user = await repo.get_user_by_name(conn, user_name)
            found = await repo.list_grants(conn, bucket.id, user.id) if user is not None else []
            if not found:
                raise NoSuchGrant(f"{user_name!r} holds no grant on bucket {name!r}", user=user_name)
            await repo.delete_grant(conn, bucket.id, found[0].user_id)
            return found[0]

        revoked: GrantRecord = await self._db.write(remove)
        self._access.forget(bucket_id=bucket.id, user_id=revoked.user_id)
        return revoked
