"""Webhook subscriptions and their delivery attempts.

A subscription is delivered by one worker at a time: ``claim_due`` leases the
subscriptions that have events past their cursor and no retry pending
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single writer on SQLite), and
``record`` stores a batch of outcomes, moving cursors forward, with the lease
renewed. A worker that dies lets its leases lapse and another carries on
from the cursors, so an event delivered but not yet recorded is delivered
again (at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.webhooks import ACTIVE, DISABLED, Attempt, Webhook
from cargohold.metadata.repositories import events as events_repo
from cargohold.metadata.tables import users, utcnow, webhook_deliveries, webhooks

MAX_ERROR = 500


def _webhook(row: Row[Any]) -> Webhook:
    mapping = row._mapping
    return Webhook(
        id=row.id,
        owner_id=row.owner_id,
        url=row.url,
        event_types=tuple(row.event_types or ()),
        bucket=row.bucket,
        state=row.state,
        created_at=row.created_at,
        cursor=row.cursor,
        attempts=row.attempts,
        delivered=row.delivered,
        secret_nonce=row.secret_nonce,
        secret_ciphertext=row.secret_ciphertext,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        next_attempt_at=row.next_attempt_at,
        owner_name=mapping.get("owner_name"),
    )


def _with_owner() -> Any:
    return select(webhooks, users.c.name.label("owner_name")).join(users, users.c.id == webhooks.c.owner_id)


async def create_webhook(conn: AsyncConnection, hook: Webhook) -> Webhook:
    await conn.execute(
        insert(webhooks).values(
            id=hook.id,
            owner_id=hook.owner_id,
            url=hook.url,
            event_types=list(hook.event_types),
            bucket=hook.bucket,
            secret_nonce=hook.secret_nonce,
            secret_ciphertext=hook.secret_ciphertext,
            state=ACTIVE,
            created_at=hook.created_at,
            cursor=hook.cursor,
            attempts=0,
            delivered=0,
        )
    )
    found = await get_webhook(conn, hook.id)
    assert found is not None
    return found


async def get_webhook(conn: AsyncConnection, webhook_id: str) -> Webhook | None:
    row = (await conn.execute(_with_owner().where(webhooks.c.id == webhook_id))).first()
    return _webhook(row) if row is not None else None


async def list_webhooks(conn: AsyncConnection, owner_id: int | None) -> list[Webhook]:
    """The subscriptions of one owner, or every one (None), oldest first."""
    stmt = _with_owner().order_by(webhooks.c.created_at, webhooks.c.id)
    if owner_id is not None:
        stmt = stmt.where(webhooks.c.owner_id == owner_id)
    return [_webhook(r) for r in (await conn.execute(stmt)).all()]


async def delete_webhook(conn: AsyncConnection, webhook_id: str) -> bool:
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    return bool((await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))).rowcount)


async def claim_due(
    conn: AsyncConnection, *, head: int, now: datetime, lease: float, limit: int, busy: Sequence[str] = ()
) -> list[Webhook]:
    """Lease up to ``limit`` active subscriptions with events up to ``head`` past their cursor,
    no retry waiting and no live lease (``busy``: ones this worker delivers already)."""
    due = (
        select(webhooks.c.id)
        .where(
            webhooks.c.state == ACTIVE,
            webhooks.c.cursor < head,
            or_(webhooks.c.next_attempt_at.is_(None), webhooks.c.next_attempt_at <= now),
            or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until < now),
        )
        .order_by(webhooks.c.next_attempt_at.is_not(None), webhooks.c.next_attempt_at, webhooks.c.id)
        .limit(limit)
    )
    if busy:
        due = due.where(webhooks.c.id.not_in(list(busy)))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = [row.id for row in await conn.execute(due)]
    if not ids:
        return []
    await conn.execute(
        update(webhooks).where(webhooks.c.id.in_(ids)).values(lease_until=now + timedelta(seconds=lease))
    )
    rows = (await conn.execute(_with_owner().where(webhooks.c.id.in_(ids)))).all()
    return sorted((_webhook(r) for r in rows), key=lambda h: ids.index(h.id))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result, or (``event_type`` empty) only a cursor moved past events not sent."""

    webhook_id: str
    cursor: int
    event_id: int | None = None
    event_type: str = ""
    attempt: int = 1
    at: datetime | None = None
    ok: bool = True
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    #: The delivering task is done: give the lease back with this record.
    release: bool = False


async def record(conn: AsyncConnection, outcomes: Sequence[Outcome], *, lease: float) -> None:
    """Store successful attempts and cursor moves in order; leases of those subscriptions are renewed.

    A cursor never moves back, and a subscription that was deleted or
    disabled meanwhile keeps its state (its rows are gone or stay put).
    """
    now = utcnow()
    existing = await _insert_attempts(conn, outcomes, now)
    moved: dict[str, tuple[int, int]] = {}
    released = {o.webhook_id for o in outcomes if o.release}
    for o in outcomes:
        cursor, sent = moved.get(o.webhook_id, (0, 0))
        moved[o.webhook_id] = (max(cursor, o.cursor), sent + (1 if o.event_type and o.ok else 0))
    for webhook_id, (cursor, sent) in moved.items():
        if webhook_id not in existing:
            continue
        await conn.execute(
            update(webhooks)
            .where(webhooks.c.id == webhook_id)
            .values(
                cursor=func.max(webhooks.c.cursor, cursor)
                if conn.dialect.name == "sqlite"
                else func.greatest(webhooks.c.cursor, cursor),
                delivered=webhooks.c.delivered + sent,
                attempts=0,
                failing_since=None,
                next_attempt_at=None,
                lease_until=None if webhook_id in released else now + timedelta(seconds=lease),
            )
        )


async def _insert_attempts(conn: AsyncConnection, outcomes: Sequence[Outcome], now: datetime) -> set[str]:
    """Insert the attempts among ``outcomes`` of subscriptions that still exist; returns those ids."""
    existing = set(
        (
            await conn.execute(
                select(webhooks.c.id).where(webhooks.c.id.in_(list({o.webhook_id for o in outcomes})))
            )
        ).scalars()
    )
    rows = [
        {
            "webhook_id": o.webhook_id,
            "event_id": o.event_id,
            "event_type": o.event_type,
            "attempt": o.attempt,
            "at": o.at or now,
            "ok": o.ok,
            "status_code": o.status_code,
            "latency_ms": o.latency_ms,
            "error": (o.error or "")[:MAX_ERROR] or None,
        }
        for o in outcomes
        if o.event_type and o.webhook_id in existing
    ]
    if rows:
        await conn.execute(insert(webhook_deliveries), rows)
    return existing


async def record_failure(
    conn: AsyncConnection,
    failed: Outcome,
    *,
    retry_in: float,
    disable_after: float,
) -> bool:
    """Store a failed attempt and schedule the retry; True if the subscription was disabled for it.

    Disabling (failures for longer than ``disable_after``) appends a
    ``webhook.disabled`` event in the same transaction.
    """
    hook = await get_webhook(conn, failed.webhook_id)
    if hook is None:
        return False
    now = failed.at or utcnow()
    await _insert_attempts(conn, [failed], now)
    since = hook.failing_since or now
    disable = (now - since).total_seconds() >= disable_after
    values: dict[str, Any] = {
        "attempts": hook.attempts + 1,
        "failing_since": since,
        "next_attempt_at": now + timedelta(seconds=retry_in),
        "lease_until": None,
    }
    if disable:
        reason = f"failing since {since.isoformat()}: {failed.error or failed.status_code}"[:255]
        values.update(state=DISABLED, disabled_at=now, disabled_reason=reason, next_attempt_at=None)
        await events_repo.append(
            conn,
            EventDraft(
                EventType.WEBHOOK_DISABLED,
                hook.owner_id,
                bucket=hook.bucket,
                detail={"webhook_id": hook.id, "url": hook.url, "reason": reason, "cursor": hook.cursor},
            ),
        )
    await conn.execute(update(webhooks).where(webhooks.c.id == hook.id).values(**values))
    return disable


async def release(conn: AsyncConnection, webhook_ids: Sequence[str]) -> None:
    """Give leases back (a worker stopping): another worker may carry on at once."""
    if webhook_ids:
        await conn.execute(
            update(webhooks).where(webhooks.c.id.in_(list(webhook_ids))).values(lease_until=None)
        )


async def list_attempts(
    conn: AsyncConnection, webhook_id: str, *, before: int | None, limit: int
) -> list[Attempt]:
    """A subscription's attempts, newest first (``before``: an attempt id, the previous page's last)."""
    stmt = (
        select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(webhook_deliveries.c.id < before)
    return [
        Attempt(
            id=r.id,
            webhook_id=r.webhook_id,
            event_id=r.event_id,
            event_type=r.event_type,
            attempt=r.attempt,
            at=r.at,
            ok=r.ok,
            status_code=r.status_code,
            latency_ms=r.latency_ms,
            error=r.error,
        )
        for r in (await conn.execute(stmt)).all()
    ]


async def prune_attempts(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest attempts from before ``before``; returns how many."""
    oldest = (
        select(webhook_deliveries.c.id)
        .where(webhook_deliveries.c.at < before)
        .order_by(webhook_deliveries.c.id)
        .limit(limit)
    )
    result = await conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(oldest.scalar_subquery()))
    )
    return result.rowcount or 0


async def record_attempt_only(conn: AsyncConnection, outcome: Outcome) -> None:
    """Store an attempt that moves nothing (a test ping)."""
    await _insert_attempts(conn, [outcome], utcnow())
