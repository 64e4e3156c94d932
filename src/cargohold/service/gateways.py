"""Gateways announce themselves (URL, zone, heartbeat) so others can send clients to them.

A gateway that knows its public URL upserts its row every
``gateway_heartbeat`` seconds; one whose row is older than three beats is
taken for gone and never chosen. The list is read at most once per beat,
so choosing a gateway for a redirect costs no query on the request path.
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


class GatewayDirectory:
    def __init__(self, db: Database, zone: str, heartbeat: float) -> None:
        self._db = db
        self.zone = zone
        self._heartbeat = heartbeat
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
        if self.url is not None:
            url = self.url
            with contextlib.suppress(Exception):  # the row ages out anyway
                await self._db.write(lambda conn: zone_repo.forget_gateway(conn, url))
