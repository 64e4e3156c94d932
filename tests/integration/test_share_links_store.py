"""Share links in the metadata store and the service rules over it, on SQLite and PostgreSQL.

The service runs over the real store with caches switched off; no storage
node is involved (the objects here are inline, and only their records are
read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.config import Settings
from cargohold.domain.model import Bucket, Principal, User
from cargohold.errors import Conflict, Forbidden, NoSuchBucket, NoSuchKey, TooManyAttempts
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import share_links as links
from cargohold.service.access import AccessService
from cargohold.service.auth import AuthService
from cargohold.service.buckets import BucketService
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService
from cargohold.service.quota import QuotaService
from cargohold.service.share_links import (
    Credentials,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    NoSuchLink,
    PasswordRequired,
    ShareLinkService,
    WrongPassword,
    cookie_key,
    token_hash,
)
from cargohold.service.throttle import Throttle

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]
PASSWORD = "open sesame!"


async def _user(db: Database, name: str, role: str = "user") -> User:
    return await db.write(lambda conn: repo.create_user(conn, name, role, None))


async def _bucket(db: Database, name: str, owner: User) -> Bucket:
    async def make(conn: AsyncConnection) -> Bucket:
        bucket = await repo.create_bucket(conn, name, "ec:2+1", owner.id)
        for key in ("doc.txt", "dir/a.txt", "dir/b.txt"):
            await repo.put_object(
                conn, bucket.id, key, size=3, etag="e", content_type="text/plain", inline_data=b"abc"
            )
        return bucket

    return await db.write(make)


def _who(user: User) -> Principal:
    return Principal(user.id, user.name, user.role)


@dataclass
class World:
    db: Database
    shares: ShareLinkService
    alice: User  # owns the bucket
    bob: User  # another user
    bucket: Bucket


async def _world(db: Database) -> World:
    buckets = BucketService(db, "ec:2+1", cache_seconds=0)
    access = AccessService(db, buckets, cache_seconds=0)
    # Reads of inline records need no node: the registry is never touched.
    objects = ObjectService(db, access, QuotaService(db), cast(NodeRegistry, None), Settings())
    auth = AuthService(db, cache_seconds=0)
    shares = ShareLinkService(db, access, objects, auth, Throttle(db), cookie_key("test secret"))
    alice, bob = await _user(db, "alice"), await _user(db, "bob")
    return World(db, shares, alice, bob, await _bucket(db, "photos", alice))


# -- the repository ---------------------------------------------------------------------


def test_links_are_stored_found_listed_and_revoked(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        one = await db.write(
            lambda conn: links.create_link(
                conn, "l1", token_hash("t1"), w.alice.id, w.bucket.id, key="doc.txt"
            )
        )
        assert (one.key, one.prefix, one.bucket_name, one.owner_name, one.downloads) == (
            "doc.txt", None, "photos", "alice", 0,
        )  # fmt: skip
        two = await db.write(
            lambda conn: links.create_link(
                conn, "l2", token_hash("t2"), w.bob.id, w.bucket.id, prefix="dir/", max_downloads=5
            )
        )
        assert two.prefix == "dir/" and two.max_downloads == 5 and two.state(datetime.now(UTC)) == "active"
        with pytest.raises(Conflict):
            await db.write(
                lambda conn: links.create_link(conn, "l1", token_hash("t3"), w.alice.id, w.bucket.id, key="x")
            )
        with pytest.raises(Conflict):
            await db.write(
                lambda conn: links.create_link(conn, "l3", token_hash("t1"), w.alice.id, w.bucket.id, key="x")
            )
        with pytest.raises(ValueError):
            await db.write(
                lambda conn: links.create_link(
                    conn, "l4", token_hash("t4"), w.alice.id, w.bucket.id, key="a", prefix="b"
                )
            )
        async with db.read() as conn:
            assert (await links.get_link_by_token_hash(conn, token_hash("t2"))) == two
            assert await links.get_link_by_token_hash(conn, token_hash("nope")) is None
            assert [link.id for link in await links.list_links(conn)] == ["l2", "l1"]  # newest first
            assert [link.id for link in await links.list_links(conn, owner_id=w.alice.id)] == ["l1"]
            assert [link.id for link in await links.list_links(conn, bucket_id=w.bucket.id)] == ["l2", "l1"]
        first = await db.write(lambda conn: links.revoke_link(conn, "l1"))
        again = await db.write(lambda conn: links.revoke_link(conn, "l1"))
        assert first is not None and again is not None and first.revoked_at == again.revoked_at
        assert again.state(datetime.now(UTC)) == "revoked"
        assert await db.write(lambda conn: links.revoke_link(conn, "missing")) is None

    run_db(scenario)


def test_concurrent_claims_never_pass_the_limit(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        await db.write(
            lambda conn: links.create_link(
                conn, "lim", token_hash("t"), w.alice.id, w.bucket.id, key="doc.txt", max_downloads=3
            )
        )
        now = datetime.now(UTC)
        counts = await asyncio.gather(
            *(db.write(lambda conn: links.claim_download(conn, "lim", now)) for _ in range(20))
        )
        assert sorted(c for c in counts if c is not None) == [1, 2, 3]
        assert counts.count(None) == 17
        async with db.read() as conn:
            stored = await links.get_link(conn, "lim")
        assert stored is not None and stored.downloads == 3 and stored.state(now) == "exhausted"

    run_db(scenario)


def test_claims_refuse_expired_and_revoked_links(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        soon = datetime.now(UTC) + timedelta(seconds=30)
        await db.write(
            lambda conn: links.create_link(
                conn, "exp", token_hash("a"), w.alice.id, w.bucket.id, key="k", expires_at=soon
            )
        )
        await db.write(
            lambda conn: links.create_link(conn, "rev", token_hash("b"), w.alice.id, w.bucket.id, key="k")
        )
        await db.write(lambda conn: links.revoke_link(conn, "rev"))
        assert (
            await db.write(lambda conn: links.claim_download(conn, "exp", soon - timedelta(seconds=1))) == 1
        )
        assert await db.write(lambda conn: links.claim_download(conn, "exp", soon)) is None
        assert await db.write(lambda conn: links.claim_download(conn, "rev", datetime.now(UTC))) is None
        assert await db.write(lambda conn: links.claim_download(conn, "missing", datetime.now(UTC))) is None

    run_db(scenario)


# -- the service ------------------------------------------------------------------------


def test_creating_needs_read_access_and_an_existing_object(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        with pytest.raises(NoSuchBucket):
            await w.shares.create(_who(w.bob), "photos", key="doc.txt")
        with pytest.raises(NoSuchKey):
            await w.shares.create(_who(w.alice), "photos", key="missing.txt")
        await db.write(lambda conn: repo.set_grant(conn, w.bucket.id, w.bob.id, "read", w.alice.id))
        link, token = await w.shares.create(_who(w.bob), "photos", key="doc.txt", max_downloads=1)
        assert link.owner_id == w.bob.id and len(token) >= 43
        opened = await w.shares.open(token, Credentials())
        assert (await w.shares.find(opened)).key == "doc.txt"
        assert await w.shares.count_download(link) == 1
        with pytest.raises(LinkExhausted):
            await w.shares.count_download(link)
        with pytest.raises(LinkExhausted):
            await w.shares.open(token, Credentials())
        with pytest.raises(NoSuchLink):
            await w.shares.resolve(token + "x")

    run_db(scenario)


def test_a_link_never_grants_more_than_its_creator_holds(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        await db.write(lambda conn: repo.set_grant(conn, w.bucket.id, w.bob.id, "read", w.alice.id))
        _, token = await w.shares.create(_who(w.bob), "photos", prefix="dir/")
        opened = await w.shares.open(token, Credentials())
        page = await w.shares.listing(opened, 10, None)
        assert [o.key for o in page.objects] == ["dir/a.txt", "dir/b.txt"]
        assert (await w.shares.find(opened, "b.txt")).key == "dir/b.txt"

        await db.write(lambda conn: repo.delete_grant(conn, w.bucket.id, w.bob.id))
        with pytest.raises(LinkRevoked):
            await w.shares.open(token, Credentials())
        await db.write(lambda conn: repo.set_grant(conn, w.bucket.id, w.bob.id, "read", w.alice.id))
        await w.shares.open(token, Credentials())
        await db.write(lambda conn: repo.update_user(conn, w.bob.id, disabled=True))
        with pytest.raises(LinkRevoked):
            await w.shares.open(token, Credentials())
        await db.write(lambda conn: repo.delete_user(conn, w.bob.id))  # the link goes with its creator
        with pytest.raises(NoSuchLink):
            await w.shares.open(token, Credentials())

    run_db(scenario)


def test_passwords_cookies_and_throttling(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        link, token = await w.shares.create(_who(w.alice), "photos", key="doc.txt", password=PASSWORD)
        other, other_token = await w.shares.create(_who(w.alice), "photos", key="doc.txt", password=PASSWORD)
        with pytest.raises(PasswordRequired):
            await w.shares.open(token, Credentials(client="1.2.3.4"))
        with pytest.raises(WrongPassword):
            await w.shares.open(token, Credentials(password="nope", client="1.2.3.4"))
        await w.shares.open(token, Credentials(password=PASSWORD, client="1.2.3.4"))

        _, cookie, max_age = await w.shares.unlock(token, PASSWORD, "1.2.3.4")
        assert 0 < max_age <= 3600
        await w.shares.open(token, Credentials(cookie=cookie))
        assert w.shares.cookie_valid(link, cookie)
        assert not w.shares.cookie_valid(other, cookie)  # bound to its link
        expires, _, mac = cookie.partition(".")
        assert not w.shares.cookie_valid(link, f"{int(expires) + 1}.{mac}")  # bound to its expiry
        assert not w.shares.cookie_valid(link, f"{int(expires) + 86400}.{mac}")
        assert not w.shares.cookie_valid(link, "garbage")

        for attempt in range(5):
            with pytest.raises(WrongPassword):
                await w.shares.open(token, Credentials(password=f"guess {attempt}", client="6.6.6.6"))
        with pytest.raises(TooManyAttempts):
            await w.shares.open(token, Credentials(password=PASSWORD, client="6.6.6.6"))
        await w.shares.open(token, Credentials(password=PASSWORD, client="1.2.3.4"))  # other clients go on
        await w.shares.open(other_token, Credentials(password=PASSWORD, client="6.6.6.6"))  # and other links

        # Across addresses: 20 failures on one link (4 new addresses, 5 each) block it for 30 s at most;
        # a browser that unlocked it before keeps its cookie.
        _, other_cookie, _ = await w.shares.unlock(other_token, PASSWORD, "1.2.3.4")
        for n in range(20):
            with pytest.raises(WrongPassword):
                await w.shares.open(other_token, Credentials(password="guess", client=f"7.7.7.{n // 5}"))
        with pytest.raises(TooManyAttempts) as refused:
            await w.shares.open(other_token, Credentials(password=PASSWORD, client="8.8.8.8"))
        assert 1 <= refused.value.extra["retry_after"] <= 30
        await w.shares.open(other_token, Credentials(cookie=other_cookie))

    run_db(scenario)


def test_expired_links_answer_gone(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        link, token = await w.shares.create(
            _who(w.alice), "photos", key="doc.txt", expires_at=datetime.now(UTC) + timedelta(seconds=60)
        )
        await db.write(
            lambda conn: conn.execute(
                links.share_links.update()
                .where(links.share_links.c.id == link.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        )
        with pytest.raises(LinkExpired):
            await w.shares.open(token, Credentials())

    run_db(scenario)


def test_who_may_see_and_revoke_a_link(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        w = await _world(db)
        root = await _user(db, "root", "admin")
        carol = await _user(db, "carol")
        await db.write(lambda conn: repo.set_grant(conn, w.bucket.id, w.bob.id, "read", w.alice.id))
        await db.write(lambda conn: repo.set_grant(conn, w.bucket.id, carol.id, "admin", w.alice.id))
        link, _ = await w.shares.create(_who(w.bob), "photos", key="doc.txt")
        for viewer in (w.bob, w.alice, carol, root):  # creator, owner, bucket admin, system admin
            assert (await w.shares.get(_who(viewer), link.id)).id == link.id
        stranger = await _user(db, "dave")
        with pytest.raises(NoSuchLink):
            await w.shares.get(_who(stranger), link.id)
        with pytest.raises(NoSuchLink):
            await w.shares.revoke(_who(stranger), link.id)
        assert [x.id for x in await w.shares.list_links(_who(w.bob))] == [link.id]
        assert await w.shares.list_links(_who(w.alice)) == []
        assert [x.id for x in await w.shares.list_links(_who(carol), bucket_name="photos")] == [link.id]
        with pytest.raises(Forbidden):
            await w.shares.list_links(_who(w.bob), everything=True)
        assert [x.id for x in await w.shares.list_links(_who(root), everything=True)] == [link.id]
        revoked = await w.shares.revoke(_who(carol), link.id)
        assert revoked.revoked_at is not None

    run_db(scenario)
