"""Share links: hand one object, or everything under a prefix, to people without an account.

A link is created by a user who can read the bucket; the token (256 random
bits) is shown once and only its SHA-256 is stored, like an API key. Whoever
holds the token may download, unless the link

* was revoked, expired or used up (410, with a code saying which), or
* its creator was disabled or can no longer read the bucket: the link never
  grants more than its creator holds now, so it is treated as revoked (410).

A password, if set, is checked with argon2id; guesses are throttled per link
from one client address and per link from anywhere (``service/throttle.py``).
A browser that typed the password once gets a cookie instead of sending the
password on every request: an HMAC of the link id and an expiry of at most
an hour, keyed by a secret derived from the cluster's secret, so any gateway
can check it without state.

A download is counted when a GET starts at byte 0 (a resumed range is the
same download continuing); the count is one conditional UPDATE, so a link
limited to n downloads serves n full downloads however many run at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.model import Bucket, ObjectRecord, Principal
from cargohold.domain.names import MAX_KEY_BYTES, validate_key
from cargohold.errors import (
    AccessDenied,
    CargoholdError,
    Forbidden,
    InvalidArgument,
    InvalidCredentials,
    NoSuchBucket,
    NoSuchKey,
    NotFound,
    Unauthorized,
)
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import events as events_repo
from cargohold.metadata.repositories import share_links as repo
from cargohold.metadata.repositories.share_links import ShareLink
from cargohold.service.access import AccessService, Level
from cargohold.service.auth import AuthService
from cargohold.service.catalog import Listing
from cargohold.service.objects import ObjectService
from cargohold.service.passwords import check_password_rules, hash_password, verify_password
from cargohold.service.throttle import Throttle

#: How long the cookie a browser gets for a correct password stays valid (at most).
COOKIE_SECONDS = 3600
MAX_TOKEN_LENGTH = 256
_COOKIE_EXPIRY = re.compile(r"[0-9]{1,12}")


#: Told of a link once it is found (see ``ShareLinkService.resolve``).
Seen = Callable[[ShareLink], None]


class NoSuchLink(NotFound):
    code = "no_such_link"
    title = "Share link does not exist"


class LinkGone(CargoholdError):
    """The link existed but serves no more (410 Gone); subclasses say why."""

    code = "link_gone"
    status = 410
    title = "Share link no longer serves"


class LinkExpired(LinkGone):
    code = "link_expired"
    title = "Share link expired"


class LinkExhausted(LinkGone):
    code = "link_exhausted"
    title = "Share link reached its download limit"


class LinkRevoked(LinkGone):
    code = "link_revoked"
    title = "Share link was revoked"


class PasswordRequired(Unauthorized):
    code = "password_required"
    title = "This share link needs a password"
    challenge = 'Basic realm="share"'  # any user name, the link's password


class WrongPassword(Unauthorized):
    code = "wrong_password"
    title = "Wrong password for this share link"
    challenge = PasswordRequired.challenge


_GONE: dict[str, type[LinkGone]] = {
    "revoked": LinkRevoked,
    "expired": LinkExpired,
    "exhausted": LinkExhausted,
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a public request offers to open a password-protected link."""

    password: str | None = None  # from X-Share-Password or Basic auth
    cookie: str | None = None  # from an earlier correct password, in a browser
    client: str = "unknown"  # the client address, for throttling


@dataclass(frozen=True, slots=True)
class Opened:
    """A link that serves this request, and the bucket its creator can still read."""

    link: ShareLink
    bucket: Bucket


def token_hash(token: str) -> str:
    """What is stored of a token: 256 random bits need no slow hash, SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_key(secret: str) -> bytes:
    """The HMAC key for link cookies, derived so it never equals a key used elsewhere."""
    return hmac.new(secret.encode(), b"cargohold share-link cookie v1", hashlib.sha256).digest()


class ShareLinkService:
    def __init__(
        self,
        db: Database,
        access: AccessService,
        objects: ObjectService,
        auth: AuthService,
        throttle: Throttle,
        cookie_secret: bytes,
    ) -> None:
        self._db = db
        self._access = access
        self._objects = objects
        self._auth = auth
        self._throttle = throttle
        self._cookie_secret = cookie_secret

    # -- for the creator (authenticated API) -----------------------------------------

    async def create(
        self,
        who: Principal,
        bucket_name: str,
        *,
        key: str | None = None,
        prefix: str | None = None,
        password: str | None = None,
        expires_at: datetime | None = None,
        max_downloads: int | None = None,
        version_id: str | None = None,
    ) -> tuple[ShareLink, str]:
        """A new link on an object (which must exist) or a prefix; returns it and its token, once."""
        if (key is None) == (prefix is None):
            raise InvalidArgument("give exactly one of key and prefix", field="key")
        if prefix is not None and version_id is not None:
            raise InvalidArgument(
                "version_id pins one object: it needs a key, not a prefix", field="version_id"
            )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidArgument("the expiry must be in the future", field="expires_at")
        if max_downloads is not None and max_downloads < 1:
            raise InvalidArgument("max_downloads must be at least 1", field="max_downloads")
        bucket = await self._access.bucket(who, bucket_name, Level.READ)
        if key is not None:
            await self._objects.find(bucket, key, version_id)
        elif prefix:
            _validate_prefix(prefix)
        password_hash = await hash_password(check_password_rules(password)) if password is not None else None
        link_id, token = secrets.token_hex(8), secrets.token_urlsafe(32)

        async def create(conn):  # type: ignore[no-untyped-def]
            link = await repo.create_link(
                conn,
                link_id,
                token_hash(token),
                who.user_id,
                bucket.id,
                key=key,
                prefix=prefix,
                version_id=version_id,
                password_hash=password_hash,
                expires_at=expires_at,
                max_downloads=max_downloads,
            )
            await events_repo.append(
                conn,
                _link_event(
                    EventType.SHARE_CREATED,
                    link,
                    key or prefix,
                    expires_at=expires_at.isoformat() if expires_at else None,
                    has_password=password_hash is not None,
                ),
            )
            return link

        link = await self._db.write(create)
        return link, token

    async def list_links(
        self, who: Principal, *, everything: bool = False, bucket_name: str | None = None
    ) -> list[ShareLink]:
        """The caller's links; every link (admins); or every link on a bucket the caller administers."""
        if everything and not who.is_admin:
            raise Forbidden("only an admin may list every share link")
        bucket_id = None
        if bucket_name is not None:
            bucket_id = (await self._access.bucket(who, bucket_name, Level.ADMIN)).id
        owner_id = None if everything or bucket_id is not None else who.user_id
        async with self._db.read() as conn:
            return await repo.list_links(conn, owner_id=owner_id, bucket_id=bucket_id)

    async def get(self, who: Principal, link_id: str) -> ShareLink:
        """A link, for its creator, an admin of its bucket or a system admin (404 to anyone else).

        Revoking is the link's DELETE: a revoked link is gone (410 link_revoked), as its token
        is; listings still show it, with its status.
        """
        link = await self._managed(who, link_id)
        if link.revoked_at is not None:
            raise LinkRevoked("this share link was revoked", link=link.id)
        return link

    async def _managed(self, who: Principal, link_id: str) -> ShareLink:
        async with self._db.read() as conn:
            link = await repo.get_link(conn, link_id)
        if link is None or not await self._may_manage(who, link):
            raise NoSuchLink(f"no share link {link_id!r}", link=link_id)
        return link

    async def revoke(self, who: Principal, link_id: str) -> ShareLink:
        """Revoke a link at once on every gateway (idempotent: again, it answers the revoked link)."""
        await self._managed(who, link_id)
        revoked = await self._db.write(lambda conn: repo.revoke_link(conn, link_id))
        if revoked is None:  # deleted with its bucket meanwhile
            raise NoSuchLink(f"no share link {link_id!r}", link=link_id)
        return revoked

    async def _may_manage(self, who: Principal, link: ShareLink) -> bool:
        if who.is_admin or link.owner_id == who.user_id:
            return True
        try:
            await self._access.bucket_by_id(who, link.bucket_id, Level.ADMIN)
        except (NoSuchBucket, AccessDenied):
            return False
        return True

    # -- for whoever holds the token (public) -----------------------------------------

    async def resolve(self, token: str, seen: Seen | None = None) -> ShareLink:
        """The link behind ``token`` if it still serves: ``NoSuchLink`` (404) or a ``LinkGone`` (410).

        ``seen`` is told of a link as soon as it is found, before any refusal,
        so the history can put refused attempts (expired, wrong password) on
        the link's bucket, where its owner sees them.
        """
        link = None
        if 0 < len(token) <= MAX_TOKEN_LENGTH:
            async with self._db.read() as conn:
                link = await repo.get_link_by_token_hash(conn, token_hash(token))
        if link is None:
            raise NoSuchLink("no share link with this token")
        if seen is not None:
            seen(link)
        _raise_if_gone(link, datetime.now(UTC))
        return link

    async def open(self, token: str, credentials: Credentials, seen: Seen | None = None) -> Opened:
        """Everything a public request must pass before it learns anything about the target."""
        link = await self.resolve(token, seen)
        if link.has_password and not self.cookie_valid(link, credentials.cookie):
            if credentials.password is None:
                raise PasswordRequired("send the link's password (X-Share-Password or Basic auth)")
            await self.check_password(link, credentials.password, credentials.client)
        return Opened(link, await self._creator_bucket(link))

    async def check_password(self, link: ShareLink, password: str, client: str) -> None:
        """``WrongPassword`` (401) or, after repeated failures, ``TooManyAttempts`` (429)."""
        attempt = await self._throttle.admit(*self._throttle.share_link(link.id, client))
        if not await verify_password(link.password_hash, password):
            raise WrongPassword("wrong password for this share link")  # admit() counted it already
        await self._throttle.passed(attempt)

    async def unlock(
        self, token: str, password: str, client: str, seen: Seen | None = None
    ) -> tuple[ShareLink, str, int]:
        """Check a password typed into the browser form: the link, a cookie value and its lifetime."""
        link = await self.resolve(token, seen)
        if link.has_password:
            await self.check_password(link, password, client)
        await self._creator_bucket(link)
        now = time.time()
        expires = int(now) + COOKIE_SECONDS
        if link.expires_at is not None:
            expires = min(expires, int(link.expires_at.timestamp()))
        return link, self._cookie(link.id, expires), max(1, expires - int(now))

    def cookie_valid(self, link: ShareLink, value: str | None) -> bool:
        """True if ``value`` is a cookie this cluster issued for ``link`` and it has not run out."""
        if not value:
            return False
        expires_text, _, _ = value.partition(".")
        if not _COOKIE_EXPIRY.fullmatch(expires_text):  # a client's cookie: ASCII, bounded
            return False
        expires = int(expires_text)
        now = time.time()
        if not now < expires <= now + COOKIE_SECONDS + 60:
            return False
        return hmac.compare_digest(value, self._cookie(link.id, expires))

    def _cookie(self, link_id: str, expires: int) -> str:
        mac = hmac.new(self._cookie_secret, f"{link_id}|{expires}".encode(), hashlib.sha256)
        return f"{expires}.{mac.hexdigest()}"

    async def _creator_bucket(self, link: ShareLink) -> Bucket:
        """The shared bucket, as long as the link's creator is active and can still read it."""
        try:
            user = await self._auth.active_user(link.owner_id)
            creator = Principal(user.id, user.name, user.role)
            return await self._access.bucket_by_id(creator, link.bucket_id, Level.READ)
        except (InvalidCredentials, NoSuchBucket, AccessDenied):
            raise LinkRevoked(
                "the creator of this link can no longer read what it shares", link=link.id
            ) from None

    async def find(self, opened: Opened, rest: str | None = None) -> ObjectRecord:
        """The shared object: the link's key, or ``prefix + rest`` under a prefix link."""
        link = opened.link
        if link.key is not None:
            if rest is not None:
                raise NoSuchLink("this link shares one object; there is nothing under it")
            return await self._objects.find(opened.bucket, link.key, link.version_id)
        if not rest:
            raise InvalidArgument("name an object under the shared prefix")
        key = (link.prefix or "") + rest
        if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            # Longer than any key, so no object under the link has this name. Not a malformed
            # request: what ``rest`` may hold depends on the link's prefix, which the URL hides.
            raise NoSuchKey(f"no object {rest!r} under this link", key=rest)
        return await self._objects.find(opened.bucket, validate_key(key))

    async def listing(self, opened: Opened, limit: int, cursor: str | None) -> Listing:
        """One page of the objects under a prefix link (all depths)."""
        if opened.link.prefix is None:
            raise InvalidArgument("this link shares one object, not a folder")
        return await self._objects.list_in(opened.bucket, opened.link.prefix, "", limit, cursor)

    async def count_download(self, link: ShareLink, key: str | None = None) -> int:
        """Count one download of ``key``; ``LinkGone`` if the link ran out (or was revoked) meanwhile.

        The ``share.used`` event (and ``share.exhausted`` with the last allowed
        download) is the link creator's: the link serves on their behalf.
        """
        now = datetime.now(UTC)

        async def claim(conn):  # type: ignore[no-untyped-def]
            count = await repo.claim_download(conn, link.id, now)
            if count is None:
                return None
            used = replace(link, downloads=count)
            await events_repo.append(conn, _link_event(EventType.SHARE_USED, used, key or link.key))
            if link.max_downloads is not None and count >= link.max_downloads:
                await events_repo.append(conn, _link_event(EventType.SHARE_EXHAUSTED, used, key or link.key))
            return count

        count = await self._db.write(claim)
        if count is not None:
            return int(count)
        async with self._db.read() as conn:
            fresh = await repo.get_link(conn, link.id)
        if fresh is None:
            raise NoSuchLink("no share link with this token")
        _raise_if_gone(fresh, now)
        raise LinkExhausted("this link reached its download limit", link=link.id)


def _link_event(kind: EventType, link: ShareLink, key: str | None, **detail: Any) -> EventDraft:
    return EventDraft(
        kind,
        link.owner_id,
        bucket=link.bucket_name,
        bucket_id=link.bucket_id,
        key=key,
        version_id=link.version_id,
        detail={
            "link_id": link.id,
            "prefix": link.prefix,
            "downloads": link.downloads,
            "max_downloads": link.max_downloads,
            **detail,
        },
    )


def _raise_if_gone(link: ShareLink, now: datetime) -> None:
    state = link.state(now)
    if state != "active":
        error = _GONE[state]
        raise error(f"this share link is {state}", link=link.id)


def _validate_prefix(prefix: str) -> None:
    """A prefix is a key's beginning: the same rules as a key, except that it may end in '/'."""
    validate_key(prefix + "x" if prefix.endswith("/") else prefix)
