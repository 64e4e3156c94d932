"""Webhook subscriptions: create, list, delete, their attempts, and the private-target rule.

Deliveries are made by workers (``workers/webhooks.py``); this service only
keeps subscriptions. A secret is generated unless the caller brings one, is
returned once, in the answer to the creation, and is stored encrypted with
the cluster secret's derived key (the S3 secrets' :class:`SecretBox`, with a
key of its own), the webhook id as associated data.

A target must resolve to public addresses only, unless an admin has set
``webhook_allow_private`` (``cluster_settings["events"]``). The check here
refuses a bad URL at once; deliveries check again against the address they
actually dial, so a name that resolves elsewhere later (DNS rebinding) is
refused too.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cargohold.domain.events import parse_type_filters
from cargohold.domain.model import Principal
from cargohold.domain.names import validate_bucket
from cargohold.domain.webhooks import (
    Attempt,
    Webhook,
    check_secret,
    check_url,
    forbidden_address,
    new_secret,
    new_webhook_id,
    target,
    valid_webhook_id,
)
from cargohold.errors import (
    InvalidArgument,
    NoSuchWebhook,
    WebhookTargetForbidden,
    WebhookTargetUnresolvable,
)
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import webhooks as webhooks_repo
from cargohold.metadata.tables import utcnow
from cargohold.service.access import AccessService, Level
from cargohold.service.s3keys import SecretBox

SETTINGS_KEY = "events"
HKDF_INFO = b"cargohold webhook secrets"
#: Seconds the admin settings are cached per process (a change shows everywhere within this).
SETTINGS_CACHE = 2.0
MAX_PER_USER = 100

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class EventSettings:
    """The admin's event settings, read from the store with a short cache."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def get(self) -> dict[str, Any]:
        if self._cached is not None and self._cached[0] > time.monotonic():
            return self._cached[1]
        async with self._db.read() as conn:
            stored = await repo.get_setting(conn, SETTINGS_KEY) or {}
        value = {"webhook_allow_private": bool(stored.get("webhook_allow_private", False))}
        self._cached = (time.monotonic() + SETTINGS_CACHE, value)
        return value

    async def allow_private(self) -> bool:
        return bool((await self.get())["webhook_allow_private"])

    async def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        if set(changes) != {"webhook_allow_private"} or not isinstance(
            changes["webhook_allow_private"], bool
        ):
            raise InvalidArgument("send webhook_allow_private: true or false", field="webhook_allow_private")
        await self._db.write(
            lambda conn: repo.update_setting(conn, SETTINGS_KEY, lambda stored: {**stored, **changes})
        )
        self._cached = None
        return await self.get()


async def check_target(url: str, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse a URL whose host resolves to any non-public address (unless private ones are allowed)."""
    if allow_private:
        return
    host, port = target(url)
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        raise WebhookTargetUnresolvable(f"{host} does not resolve: {exc}", field="url") from None
    if not addresses:
        raise WebhookTargetUnresolvable(f"{host} does not resolve", field="url")
    refused = [a for a in addresses if forbidden_address(a)]
    if refused:
        raise WebhookTargetForbidden(
            f"{host} resolves to {', '.join(refused)}: webhooks go to public addresses only"
            " (an admin may allow private ones: webhook_allow_private)",
            field="url",
        )


class WebhookService:
    def __init__(
        self,
        db: Database,
        access: AccessService,
        cluster_secret: str,
        settings: EventSettings,
        resolver: Resolver = resolve,
    ) -> None:
        self._db = db
        self._access = access
        self.box = SecretBox(cluster_secret, HKDF_INFO)
        self.settings = settings
        self._resolver = resolver

    async def create(
        self,
        who: Principal,
        url: str,
        types: Sequence[str] = (),
        bucket: str | None = None,
        secret: str | None = None,
    ) -> tuple[Webhook, str]:
        """A new subscription, receiving events from now on; returns it and its secret (once)."""
        check_url(url)
        filters = parse_type_filters(types)
        secret = check_secret(secret) if secret is not None else new_secret()
        if bucket is not None:
            validate_bucket(bucket)
            await self._access.bucket(who, bucket, Level.READ)
        await check_target(url, await self.settings.allow_private(), self._resolver)
        webhook_id = new_webhook_id()
        nonce, sealed = self.box.seal(webhook_id, secret)

        async def create(conn):  # type: ignore[no-untyped-def]
            if len(await webhooks_repo.list_webhooks(conn, who.user_id)) >= MAX_PER_USER:
                raise InvalidArgument(f"a user may hold at most {MAX_PER_USER} webhooks")
            return await webhooks_repo.create_webhook(
                conn,
                Webhook(
                    id=webhook_id,
                    owner_id=who.user_id,
                    url=url,
                    event_types=filters,
                    bucket=bucket,
                    state="active",
                    created_at=utcnow(),
                    cursor=await repo.events.last_id(conn),
                    attempts=0,
                    delivered=0,
                    secret_nonce=nonce,
                    secret_ciphertext=sealed,
                ),
            )

        return await self._db.write(create), secret

    async def list_for(self, who: Principal) -> list[Webhook]:
        """The caller's subscriptions; an admin's call lists everyone's."""
        async with self._db.read() as conn:
            return await webhooks_repo.list_webhooks(conn, None if who.is_admin else who.user_id)

    async def get(self, who: Principal, webhook_id: str) -> Webhook:
        """A subscription, for its owner or an admin (404 to anyone else)."""
        if valid_webhook_id(webhook_id):
            async with self._db.read() as conn:
                hook = await webhooks_repo.get_webhook(conn, webhook_id)
            if hook is not None and (who.is_admin or hook.owner_id == who.user_id):
                return hook
        raise NoSuchWebhook(f"no webhook {webhook_id!r}", webhook=webhook_id)

    async def delete(self, who: Principal, webhook_id: str) -> None:
        await self.get(who, webhook_id)
        if not await self._db.write(lambda conn: webhooks_repo.delete_webhook(conn, webhook_id)):
            raise NoSuchWebhook(f"no webhook {webhook_id!r}", webhook=webhook_id)

    async def attempts(
        self, who: Principal, webhook_id: str, *, before: int | None, limit: int
    ) -> list[Attempt]:
        await self.get(who, webhook_id)
        async with self._db.read() as conn:
            return await webhooks_repo.list_attempts(conn, webhook_id, before=before, limit=limit)

    def secret(self, hook: Webhook) -> str:
        return self.box.open_sealed(hook.id, hook.secret_nonce, hook.secret_ciphertext)

    async def record_ping(self, outcome: webhooks_repo.Outcome) -> None:
        """A ping's attempt joins the subscription's list; it moves no cursor and retries nothing."""
        await self._db.write(lambda conn: webhooks_repo.record_attempt_only(conn, outcome))
