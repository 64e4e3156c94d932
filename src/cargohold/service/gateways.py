"""Gateways announce themselves (URL, zone, heartbeat) so others can send clients to them.

A gateway that knows its public URL upserts its row every
``gateway_heartbeat`` seconds; one whose row is older than three beats is
taken for gone and never chosen. The list is read at most once per beat,
so choosing a gateway for a redirect costs no query on the request path.

A gateway is a URL, not a process: the N worker processes of ``gateway
--workers N`` share one port, so each registers and heartbeats the same row
(an idempotent upsert), and the gateway stays a redirect target as long as
any of them lives. None of them removes the row when it stops, since its
siblings, or its own restart, still serve that URL; the parent that
supervises them removes it once all have stopped (:func:`forget_gateway`).
A lone gateway process removes its row itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta

from cargohold.metadata.db import Database
from cargohold.metadata.repositories import zones as zone_repo
from cargohold.metadata.repositories.zones import GatewayRecord

log = logging.getLogger(__name__)

#: Beats a gateway may miss before it is no longer a redirect target.
MISSED_BEATS = 3


def registered_url(public_url: str | None, listening: str) -> str | None:
    """The URL a gateway registers under: ``public_url``, else the URL it listens on.

    A gateway bound to a wildcard address has no URL others could use: None
    (it registers only with ``public_url`` set).
    """
    url = (public_url or listening).rstrip("/")
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return None if host in ("0.0.0.0", "::", "") else url


async def forget_gateway(db_url: str, url: str) -> None:
    """Remove ``url``'s row: what the parent of several gateway workers does once they all stopped."""
    db = await Database.open(db_url, migrate_schema=False)
    try:
        await db.write(lambda conn: zone_repo.forget_gateway(conn, url))
    finally:
        await db.close()


class GatewayDirectory:
    def __init__(self, db: Database, zone: str, heartbeat: float, *, forget_on_stop: bool = True) -> None:
        self._db = db
        self.zone = zone
        self._heartbeat = heartbeat
        #: False for one of several worker processes serving the same URL (see module doc).
        self._forget_on_stop = forget_on_stop
        self.url: str | None = None
        self._started_at = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None
        self._known: list[GatewayRecord] = []
        self._loaded_at = float("-inf")

    async def announce(self, url: str) -> None:
        """Register this gateway under ``url`` now, and keep its heartbeat going."""
        self.url = url.rstrip("/")
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="gateway-heartbeat")

    async def _beat(self) -> None:
        if self.url is not None:
            url = self.url
            await self._db.write(
                lambda conn: zone_repo.heartbeat_gateway(conn, url, self.zone, self._started_at)
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat()
            except Exception:  # a missed beat is retried on the next one
                log.exception("gateway heartbeat failed")

    async def healthy(self) -> list[GatewayRecord]:
        """Gateways whose heartbeat is recent (this one included)."""
        if time.monotonic() - self._loaded_at > self._heartbeat:
            async with self._db.read() as conn:
                self._known = await zone_repo.list_gateways(conn)
            self._loaded_at = time.monotonic()
        cutoff = datetime.now(UTC) - timedelta(seconds=self._heartbeat * MISSED_BEATS)
        return [g for g in self._known if g.last_seen >= cutoff]

    async def in_zone(self, zone: str) -> GatewayRecord | None:
        """A healthy gateway of ``zone`` other than this one, picked at random to spread clients."""
        choices = [g for g in await self.healthy() if g.zone == zone and g.url != self.url]
        return random.choice(choices) if choices else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.url is not None and self._forget_on_stop:
            url = self.url
            with contextlib.suppress(Exception):  # the row ages out anyway
                await self._db.write(lambda conn: zone_repo.forget_gateway(conn, url))
