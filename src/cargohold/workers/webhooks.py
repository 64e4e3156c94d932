"""Webhook deliveries from the event outbox: in order per subscription, at least once, many at a time.

Each round leases the subscriptions that have events past their cursor
(``repositories/webhooks.claim_due``) and delivers each in its own task, up
to ``webhook_concurrency`` at once. A task walks the log from its
subscription's cursor through this process's :class:`EventFeed` (recent
events come from memory, older ones from the database a page at a time),
skips what the subscription does not select or its owner may not see, and
POSTs the rest one after another: the next event of a subscription is not
sent before the previous one was accepted. A task that has caught up waits
``LINGER`` seconds for more before it gives its lease back, so a steady
trickle of events goes out as soon as this worker's feed sees them.

Successes are recorded in batches (one transaction every ~20 ms for every
subscription), which is what lets one worker make hundreds of deliveries a
second; a failure first records the successes before it, then the failed
attempt and the time of the retry (exponential backoff from
``webhook_backoff_base`` up to ``webhook_backoff_max``); a subscription that
has failed for ``webhook_disable_after`` is disabled, with a
``webhook.disabled`` event. A worker that stops records what it delivered and
gives its leases back; one that dies leaves at most the last ~20 ms of
deliveries unrecorded, and those go out again (at least once, and the
``webhook-id`` lets receivers see the repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from standardwebhooks.webhooks import Webhook as Signer

from cargohold.config import Settings
from cargohold.domain.events import Event
from cargohold.domain.webhooks import Webhook, backoff, body, message_id
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import webhooks as webhooks_repo
from cargohold.metadata.repositories.webhooks import Outcome
from cargohold.metadata.tables import utcnow
from cargohold.service.events import EventFeed, Selection, audience, cancelled
from cargohold.service.webhooks import WebhookService
from cargohold.workers.webhook_sender import Sender

log = logging.getLogger(__name__)

#: Seconds a subscription stays leased to the worker delivering it (renewed by every record).
LEASE = 60.0
#: Seconds outcomes may wait to be recorded together.
FLUSH_EVERY = 0.02
FLUSH_BATCH = 500
#: Seconds between looks for retries that came due (new events wake the dispatcher at once).
RETRY_POLL = 0.5
#: Seconds a delivering task keeps the owner's visible buckets before reading them again.
AUDIENCE_TTL = 5.0
PAGE = 200
#: Seconds a caught-up subscription keeps its lease, waiting for its next event.
LINGER = 2.0


class WebhookDispatcher:
    def __init__(self, db: Database, feed: EventFeed, webhooks: WebhookService, settings: Settings) -> None:
        self._db = db
        self._feed = feed
        self._webhooks = webhooks
        self._settings = settings
        self.sender = Sender(webhooks.settings.allow_private, timeout=settings.webhook_timeout)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._pending: list[Outcome] = []
        self._flush_lock = asyncio.Lock()
        self._has_pending = asyncio.Event()
        self._wake = asyncio.Event()
        self.delivered = 0

    # -- run ---------------------------------------------------------------------

    async def run_forever(self) -> None:
        flusher = asyncio.create_task(self._flush_loop(), name="webhook-records")
        seen = -1
        try:
            while True:
                try:
                    await self.round()
                except Exception:
                    if cancelled():
                        raise
                    log.exception("webhook round failed")
                seen = self._feed.head
                waits = [
                    asyncio.ensure_future(self._feed.wait_beyond(seen, RETRY_POLL)),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
                self._wake.clear()
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self.stop()

    async def round(self) -> int:
        """Lease the subscriptions due now (as many as there are free slots) and start them."""
        free = self._settings.webhook_concurrency - len(self._running)
        if free <= 0 or not self._feed.ready.is_set():
            return 0
        head = self._feed.head
        claimed = await self._db.write(
            lambda conn: webhooks_repo.claim_due(
                conn, head=head, now=utcnow(), lease=LEASE, limit=free, busy=list(self._running)
            )
        )
        for hook in claimed:
            task = asyncio.create_task(self._deliver(hook), name=f"webhook-{hook.id}")
            self._running[hook.id] = task
            task.add_done_callback(functools.partial(self._finished, hook.id))
        return len(claimed)

    def _finished(self, hook_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(hook_id, None)
        self._wake.set()

    async def stop(self) -> None:
        """Stop delivering: record what was delivered, give the leases back."""
        tasks = list(self._running.values())
        held = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()
        with contextlib.suppress(Exception):
            await self._db.write(lambda conn: webhooks_repo.release(conn, held))
        await self.sender.close()

    # -- one subscription ---------------------------------------------------------------

    async def _deliver(self, hook: Webhook) -> None:
        try:
            await self._deliver_events(hook)
        except asyncio.CancelledError:
            raise
        except Exception:
            if cancelled():
                raise
            log.exception("webhook %s: delivery round failed", hook.id)
            await self._release(hook.id)

    async def _deliver_events(self, hook: Webhook) -> None:
        async with self._db.read() as conn:
            owner = await repo.get_user(conn, hook.owner_id)
        if owner is None:
            return  # deleted with its owner
        signer = Signer(self._webhooks.secret(hook))
        selection = Selection(hook.event_types, hook.bucket)
        seen_by, seen_at = await audience(self._db, owner.id, owner.role == "admin"), time.monotonic()
        cursor, attempt = hook.cursor, hook.attempts + 1
        while True:
            events = await self._feed.read(cursor, PAGE)
            if not events:
                # Stay a moment for the next event: it then goes out without a new lease (a write).
                if await self._feed.wait_beyond(cursor, LINGER):
                    continue
                break
            if time.monotonic() - seen_at > AUDIENCE_TTL:
                seen_by, seen_at = await audience(self._db, owner.id, owner.role == "admin"), time.monotonic()
            for event in events:
                if not (selection.matches(event) and seen_by.sees(event)):
                    continue
                if cursor < event.id - 1:  # record the skipped ones with the next outcome
                    self._add(Outcome(hook.id, event.id - 1))
                if not await self._send(hook, signer, event, attempt):
                    return
                cursor, attempt = event.id, 1
            cursor = events[-1].id
            self._add(Outcome(hook.id, cursor))  # also renews the lease while nothing is sent
        self._add(Outcome(hook.id, cursor, release=True))

    async def _send(self, hook: Webhook, signer: Signer, event: Event, attempt: int) -> bool:
        result = await self.sender.send(hook.url, signer, message_id(event.id), body(event))
        outcome = Outcome(
            hook.id,
            event.id if result.ok else event.id - 1,
            event_id=event.id,
            event_type=event.type,
            attempt=attempt,
            at=utcnow(),
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
        )
        if result.ok:
            self.delivered += 1
            self._add(outcome)
            return True
        await self.flush()  # the successes before it are recorded first
        settings = self._settings
        retry_in = backoff(attempt, settings.webhook_backoff_base, settings.webhook_backoff_max)
        disabled = await self._db.write(
            lambda conn: webhooks_repo.record_failure(
                conn, outcome, retry_in=retry_in, disable_after=self._settings.webhook_disable_after
            )
        )
        if disabled:
            log.warning(
                "webhook %s (%s) disabled after a day of failures: %s", hook.id, hook.url, result.error
            )
        else:
            log.info(
                "webhook %s: event %s not delivered (%s), retry in %.1fs",
                hook.id,
                event.id,
                result.error,
                retry_in,
            )
        return False

    async def _release(self, hook_id: str) -> None:
        await self.flush()
        await self._db.write(lambda conn: webhooks_repo.release(conn, [hook_id]))

    # -- recording ------------------------------------------------------------------------

    def _add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._has_pending.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._has_pending.wait()
            if len(self._pending) < FLUSH_BATCH:
                await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
            except Exception:
                if cancelled():
                    raise
                log.exception("recording webhook deliveries failed; retrying")
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            if not batch:
                return
            try:
                await self._db.write(lambda conn: webhooks_repo.record(conn, batch, lease=LEASE))
            except BaseException:
                self._pending[:0] = batch
                self._has_pending.set()
                raise
        if any(o.release for o in batch):
            self._wake.set()
