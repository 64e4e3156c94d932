"""Worker throttles: bandwidth per kind of work and a cap on jobs at once, changeable at run time.

The values start from the settings (flags, environment, TOML) and an admin
overrides them through the API; the override lives in the metadata store
(``cluster_settings["worker"]``), so every worker of a cluster follows it
within one refresh (a few seconds) without a restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cargohold.config import Settings
from cargohold.errors import InvalidArgument
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database

SETTINGS_KEY = "worker"
#: Largest value accepted for a bandwidth (1 TiB/s: effectively unlimited, still a sane integer).
MAX_BANDWIDTH = 1 << 40
MAX_CONCURRENCY = 256


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    repair_bandwidth: int
    rebalance_bandwidth: int
    scrub_bandwidth: int
    concurrency: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerLimits:
        return cls(
            repair_bandwidth=settings.repair_bandwidth,
            rebalance_bandwidth=settings.rebalance_bandwidth,
            scrub_bandwidth=settings.scrub_bandwidth,
            concurrency=settings.worker_concurrency,
        )

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def merged(self, changes: dict[str, Any]) -> WorkerLimits:
        """These limits with ``changes`` applied; InvalidArgument for an unknown name or bad value."""
        known = {f.name for f in fields(self)}
        values: dict[str, int] = {}
        for name, value in changes.items():
            if name not in known:
                raise InvalidArgument(f"unknown worker setting {name!r}", field=name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"{name} must be an integer", field=name)
            low, high = (1, MAX_CONCURRENCY) if name == "concurrency" else (0, MAX_BANDWIDTH)
            if not low <= value <= high:
                raise InvalidArgument(f"{name} must be between {low} and {high}", field=name)
            values[name] = value
        return replace(self, **values)


class LimitsStore:
    """Reads and changes the cluster-wide limits (defaults from settings)."""

    def __init__(self, db: Database, defaults: WorkerLimits) -> None:
        self._db = db
        self._defaults = defaults

    async def get(self) -> WorkerLimits:
        async with self._db.read() as conn:
            return self._apply(await repo.get_setting(conn, SETTINGS_KEY))

    def _apply(self, stored: dict[str, Any] | None) -> WorkerLimits:
        if not stored:
            return self._defaults
        # A value written by an older or newer version is ignored rather than trusted.
        usable = {k: v for k, v in stored.items() if k in self._defaults.to_json()}
        try:
            return self._defaults.merged(usable)
        except InvalidArgument:
            return self._defaults

    async def update(self, changes: dict[str, Any]) -> WorkerLimits:
        """Apply ``changes`` to what is stored, atomically (parallel changes all land)."""
        if not changes:
            names = ", ".join(self._defaults.to_json())
            raise InvalidArgument(f"nothing to change: send one or more of {names}")
        self._defaults.merged(changes)  # refuse bad input before touching the store

        def change(stored: dict[str, Any]) -> dict[str, Any]:
            # Only what an admin set is stored: the rest keeps following the settings.
            return {**stored, **changes}

        stored = await self._db.write(lambda conn: repo.update_setting(conn, SETTINGS_KEY, change))
        return self._apply(stored)


class Bandwidth:
    """A token bucket in bytes/s shared by every transfer of one kind of work (0: unlimited).

    ``take(n)`` returns at once while the bucket holds tokens and sleeps off
    any debt, so bursts up to one second's worth pass and the long-run rate
    is the limit. The rate can change at any time (the next take follows it).
    """

    def __init__(self, rate: int = 0) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        if self.rate <= 0 or n <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            debt = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if debt > 0:
                await asyncio.sleep(debt)
