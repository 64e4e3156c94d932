"""The worker role: every kind of healing work, run forever or once.

``cargohold worker`` builds the shared core (``bootstrap.open_core``) and this
role on top of it. Running, it claims due jobs of every kind and, every
``check_interval``, looks for work nobody queued: nodes down longer than
``node_lost_after`` (declared lost, their parts queued for repair, most
endangered first), degraded parts without a queued repair, a fill spread
above ``rebalance_threshold``, a scrub pass that is due, and the orphan
sweep; it prunes events and webhook attempts older than ``event_retention``.
Beside the jobs it delivers webhooks (``workers/webhooks.py``) from the
event log, which it follows through its own :class:`EventFeed`. ``--once``
does the same for the chosen kinds immediately and returns when nothing of
them is left to do (webhooks are delivered by running workers only).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.bootstrap import Core
from cargohold.domain.jobs import (
    ALL_KINDS,
    DELETE_PART,
    DRAIN_NODE,
    IMPORT,
    KIND_GROUPS,
    LOST_NODE,
    ORPHAN_SWEEP,
    REBALANCE,
    REPAIR_PART,
    SCRUB_NODE,
)
from cargohold.domain.model import NODE_DRAINING, NODE_LOST, NODE_NORMAL
from cargohold.imports.http import resolve
from cargohold.metadata import repositories as repo
from cargohold.metadata.repositories.webhooks import prune_attempts
from cargohold.service.events import EventFeed
from cargohold.service.healing import HealingService, fill_spread, share_available
from cargohold.service.imports import ImportService
from cargohold.service.webhooks import EventSettings, WebhookService
from cargohold.workers.drain import Drainer
from cargohold.workers.gc import GarbageCollector
from cargohold.workers.imports import ImportRunner
from cargohold.workers.jobs import Handler, JobContext, JobRunner
from cargohold.workers.limits import Bandwidth, WorkerLimits
from cargohold.workers.moves import ShareMover
from cargohold.workers.orphans import OrphanSweeper
from cargohold.workers.rebalance import Rebalancer
from cargohold.workers.repair import Repairer
from cargohold.workers.scrub import Scrubber
from cargohold.workers.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

SCHEDULE_KEY = "schedule"  # cluster_settings: when scrub and the orphan sweep last started
#: Imports run beside the healing work, under their own cap (``import_concurrency``).
HEALING_KINDS = tuple(kind for kind in ALL_KINDS if kind != IMPORT)
#: Seconds between looks for queued imports (at most; ``worker_poll_interval`` if shorter).
IMPORT_POLL = 0.25
PAGE = 500
PRUNE_BATCH = 5000
#: Seconds between reads of the throttles an admin may have changed.
LIMITS_REFRESH = 3.0
#: How often a worker recounts degraded parts for the metrics (a pass over every part).
HEALTH_METRICS_EVERY = timedelta(minutes=5)


class HealingWorker:
    def __init__(self, core: Core) -> None:
        self.core = core
        settings = core.settings
        self.limits = WorkerLimits.from_settings(settings)
        self.repair_bandwidth = Bandwidth(self.limits.repair_bandwidth)
        self.move_bandwidth = Bandwidth(self.limits.rebalance_bandwidth)
        self.repairer = Repairer(core.db, core.nodes, core.objects, settings, self.repair_bandwidth)
        mover = ShareMover(core.db, core.nodes, self.move_bandwidth)
        self.scrubber = Scrubber(core.db, core.nodes, self.limits.scrub_bandwidth)
        self.rebalancer = Rebalancer(
            core.db, core.nodes, mover, settings.rebalance_threshold, self.limits.concurrency
        )
        self.healing = HealingService(core.db, core.nodes, core.limits, settings)
        self._health_due = datetime.min.replace(tzinfo=UTC)
        handlers: dict[str, Handler] = {
            REPAIR_PART: self.repairer.handle,
            LOST_NODE: self._queue_lost_node,
            SCRUB_NODE: self.scrubber.handle,
            REBALANCE: self.rebalancer.handle,
            DRAIN_NODE: Drainer(core.db, core.nodes, mover, self.repairer).handle,
            DELETE_PART: GarbageCollector(core.db, core.nodes).handle,
            ORPHAN_SWEEP: OrphanSweeper(core.db, core.nodes, settings.orphan_grace).handle,
        }
        self.runner = JobRunner(core.db, handlers, lambda: self.limits.concurrency)
        self.events = EventFeed(core.db, poll_interval=settings.event_poll_interval)
        webhooks = WebhookService(core.db, core.access, settings.cluster_secret or "", EventSettings(core.db))
        self.webhooks = WebhookDispatcher(core.db, self.events, webhooks, settings)
        imports = ImportService(core.db, core.access, resolve, webhooks.settings.allow_private)
        importer = ImportRunner(
            imports, core.uploads, core.access, core.auth, core.quota, core.source, settings
        )
        self.imports = JobRunner(
            core.db,
            {IMPORT: importer.handle},
            lambda: settings.import_concurrency,
            lease_seconds=settings.import_lease,
        )

    # -- throttles ------------------------------------------------------------------

    async def refresh_limits(self) -> None:
        """Follow the limits an admin set through the API (read from the metadata store)."""
        self.limits = await self.core.limits.get()
        self.repair_bandwidth.rate = self.limits.repair_bandwidth
        self.move_bandwidth.rate = self.limits.rebalance_bandwidth
        self.scrubber.rate = self.limits.scrub_bandwidth
        self.rebalancer.concurrency = self.limits.concurrency

    # -- run modes --------------------------------------------------------------------

    async def run_once(self, groups: Sequence[str] = tuple(KIND_GROUPS)) -> int:
        """Start the chosen kinds of work now and run until none of it is left; return jobs run."""
        await self.refresh_limits()
        await self.core.nodes.probe_all()
        kinds: list[str] = []
        for group in groups:
            kinds.extend(KIND_GROUPS[group])
            await self._start(group)
        healing = [kind for kind in kinds if kind != IMPORT]
        ran = await self.imports.run_due([IMPORT]) if IMPORT in kinds else 0
        return ran + (await self.runner.run_due(healing) if healing else 0)

    async def run_forever(self) -> None:
        checks = asyncio.create_task(self._check_loop(), name="worker-checks")
        poll = self.core.settings.worker_poll_interval
        self.events.start()
        hooks = asyncio.create_task(self.webhooks.run_forever(), name="webhooks")
        try:
            await asyncio.gather(
                self.runner.run_forever(HEALING_KINDS, poll),
                # Someone waits on an import from the moment it is asked for: look more often.
                self.imports.run_forever([IMPORT], min(poll, IMPORT_POLL)),
            )
        finally:
            for task in (checks, hooks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.events.stop()
            await self.imports.stop()
            await self.runner.stop()

    async def _check_loop(self) -> None:
        """Follow throttle changes every few seconds; look for unqueued work every check_interval."""
        next_check = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.refresh_limits()
                if loop.time() >= next_check:
                    next_check = loop.time() + self.core.settings.check_interval
                    await self.check()
            except Exception:  # a bad round must not end the worker
                log.exception("worker checks failed")
            await asyncio.sleep(min(LIMITS_REFRESH, self.core.settings.check_interval))

    # -- finding work ---------------------------------------------------------------------

    async def _start(self, group: str) -> None:
        """What ``--once --kind group`` starts before running the jobs of that group."""
        if group == "repair":
            await self.declare_lost_nodes()
            await self.queue_degraded()
        elif group == "scrub":
            await self.healing.start_scrub()
        elif group == "rebalance":
            await self.healing.start_rebalance()
        elif group == "drain":
            for node in self.core.nodes.nodes():
                if node.state == NODE_DRAINING:
                    await self._enqueue(DRAIN_NODE, {"node_id": node.id}, f"drain:{node.id}")
        elif group == "gc":
            await self._enqueue(ORPHAN_SWEEP, {}, ORPHAN_SWEEP)

    async def check(self, now: datetime | None = None) -> None:
        """One round of looking for work nobody queued (see the module docstring)."""
        now = now or datetime.now(UTC)
        settings = self.core.settings
        await self.declare_lost_nodes(now)
        await self.queue_degraded()
        await self.healing.export_job_counts()
        if self._health_due <= now:  # a full pass over every part: not on every check
            self._health_due = now + HEALTH_METRICS_EVERY
            await self.healing.health()
        if fill_spread(self.core.nodes.nodes()) > settings.rebalance_threshold:
            await self.healing.start_rebalance()
        schedule = await self._schedule()
        # A new cluster's first scrub and sweep come one interval after its first worker started.
        schedule.setdefault("scrub", now.isoformat())
        schedule.setdefault("orphans", now.isoformat())
        if _due(schedule.get("scrub"), settings.scrub_interval, now):
            await self.healing.start_scrub()
            schedule["scrub"] = now.isoformat()
        if _due(schedule.get("orphans"), max(60.0, settings.orphan_grace), now):
            await self._enqueue(ORPHAN_SWEEP, {}, ORPHAN_SWEEP)
            schedule["orphans"] = now.isoformat()
        await self.core.db.write(lambda conn: repo.put_setting(conn, SCHEDULE_KEY, schedule))
        await self.prune_events(now)
        self.runner.wakeup.set()

    async def prune_events(self, now: datetime | None = None) -> int:
        """Delete events and webhook attempts older than ``event_retention``, a bounded batch a
        transaction so the store's writer is never held for long."""
        before = (now or datetime.now(UTC)) - timedelta(seconds=self.core.settings.event_retention)
        pruned = 0
        while True:
            batch = await self.core.db.write(lambda conn: _prune(conn, before))
            pruned += batch
            if batch < PRUNE_BATCH:
                return pruned

    async def _schedule(self) -> dict[str, str]:
        async with self.core.db.read() as conn:
            return await repo.get_setting(conn, SCHEDULE_KEY) or {}

    async def declare_lost_nodes(self, now: datetime | None = None) -> list[int]:
        """Nodes down for longer than ``node_lost_after`` become lost; their parts are queued for repair."""
        now = now or datetime.now(UTC)
        limit = timedelta(seconds=self.core.settings.node_lost_after)
        lost = []
        for node in self.core.nodes.nodes():
            if node.healthy or node.state not in (NODE_NORMAL, NODE_DRAINING):
                continue
            if node.last_seen is not None and now - node.last_seen < limit:
                continue
            log.warning(
                "node %s (%s) has been down since %s: declaring it lost", node.id, node.url, node.last_seen
            )
            await self.healing.set_node_state(node.id, NODE_LOST)
            lost.append(node.id)
        return lost

    async def queue_degraded(self) -> int:
        """Queue a repair for every part with a share marked missing (one queued repair per part),
        and a sweep of every lost node for parts still placed on it."""
        for node in self.core.nodes.nodes():
            if node.state == NODE_LOST:
                await self._enqueue(LOST_NODE, {"node_id": node.id}, f"lost:{node.id}")
        queued = 0
        after = ""
        while True:
            async with self.core.db.read() as conn:
                part_ids = await repo.degraded_parts(conn, after, PAGE)
            if not part_ids:
                return queued
            queued += await self.core.db.write(
                functools.partial(_queue_repairs, part_ids=part_ids, priority=0)
            )
            after = part_ids[-1]

    async def _queue_lost_node(self, ctx: JobContext) -> None:
        """The ``lost_node`` job: queue a repair of every part the node held, most endangered first."""
        node_id = int(ctx.payload["node_id"])
        await self.core.nodes.load()  # the store's node states, not a cache a probe behind
        nodes = {n.id: n for n in self.core.nodes.nodes()}
        while True:
            async with self.core.db.read() as conn:
                part_ids = await repo.parts_on_node(conn, node_id, ctx.payload.get("after", ""), PAGE)
                shares = await repo.shares_of_parts(conn, part_ids)
            if not part_ids:
                return
            # Priority: how many shares each part can no longer serve (higher is repaired first).
            priorities = {
                part_id: 10 + sum(not share_available(nodes.get(s.node_id or -1), s.state) for s in found)
                for part_id, found in shares.items()
            }
            await self.core.db.write(functools.partial(_queue_prioritised, priorities=priorities))
            ctx.payload["after"] = part_ids[-1]
            await ctx.progress(force=True)

    async def _enqueue(self, kind: str, payload: dict[str, object], dedupe: str) -> None:
        await self.core.db.write(lambda conn: repo.enqueue(conn, kind, payload, dedupe=dedupe))


def _due(last: str | None, interval: float, now: datetime) -> bool:
    """Whether ``interval`` has passed since ``last``; a schedule never started is not due yet."""
    if last is None:
        return False
    try:
        return now - datetime.fromisoformat(last) >= timedelta(seconds=interval)
    except ValueError:
        return True


async def _prune(conn: AsyncConnection, before: datetime) -> int:
    return await repo.events.prune(conn, before, PRUNE_BATCH) + await prune_attempts(
        conn, before, PRUNE_BATCH
    )


async def _queue_repairs(conn: AsyncConnection, *, part_ids: list[str], priority: int) -> int:
    return sum([await repo.enqueue_repair(conn, part_id, priority) is not None for part_id in part_ids])


async def _queue_prioritised(conn: AsyncConnection, *, priorities: dict[str, int]) -> None:
    for part_id, priority in priorities.items():
        await repo.enqueue_repair(conn, part_id, priority)
