"""Background imports as clients and workers see them: ask, follow, list, cancel; and the
status changes a worker makes, each in one transaction with what it records.

The bytes are fetched by a worker (``workers/imports.py``) through a
:class:`Source`, the one port to the network: its HTTP implementation is an
adapter (``cargohold.imports.http``), tests use a fake. Host names are
resolved through a :class:`Resolver` port for the same reason.

Whom a source may reach is decided twice: when the import is asked for (its
host's addresses, a 422 ``source_not_allowed``) and again by the adapter at
every connection (a name that resolved to a public address then may resolve
to an internal one now). Private, loopback and link-local addresses are open
to imports only while the cluster setting ``webhook_allow_private`` is on,
the setting that opens them to webhooks.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain import uploads as sm
from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.imports import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Answer,
    Import,
    ImportFinished,
    NoSuchImport,
    SourceNotAllowed,
    parse_source,
    refused_addresses,
)
from cargohold.domain.jobs import IMPORT
from cargohold.domain.model import ObjectRecord, Principal
from cargohold.domain.names import validate_key
from cargohold.errors import Forbidden, InvalidArgument
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.access import AccessService, Level
from cargohold.service.uploads import close_upload, release_upload_parts

#: The cluster setting that opens private addresses to imports and webhooks (one of the event
#: settings: ``PATCH /api/v1/events/settings``, ``service/webhooks.EventSettings``).
ALLOW_PRIVATE = "webhook_allow_private"
MAX_LIST = 1000

#: ``(host, port) -> addresses``; raises ``SourceUnresolvable`` when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]
#: Whether private addresses are open to imports now (the cluster setting, briefly cached).
PrivateAllowed = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class SourceReply:
    """An answer of the source: where its body starts, and the body."""

    answer: Answer
    content_type: str | None
    body: AsyncIterator[bytes]


class Source(Protocol):
    """The port through which a worker reads a source.

    ``open`` asks for the file from ``offset`` on (a ``Range`` request, with
    ``If-Range: validator`` when one is known) and yields the answer once
    its headers are in; the body is read within the block. Failures are
    domain errors: ``SourceFailed`` subclasses (``retryable`` says whether a
    later attempt may do better) and ``SourceNotAllowed`` for an address
    outside what ``allow_private`` permits, checked at connection time.
    """

    def open(
        self, url: str, *, offset: int, validator: str | None, allow_private: bool
    ) -> AbstractAsyncContextManager[SourceReply]: ...


def _now() -> datetime:
    return datetime.now(UTC)


class ImportService:
    def __init__(
        self, db: Database, access: AccessService, resolve: Resolver, private_allowed: PrivateAllowed
    ) -> None:
        self._db = db
        self._access = access
        self._resolve = resolve
        self.allow_private = private_allowed

    # -- what clients ask ------------------------------------------------------------

    async def create(
        self,
        who: Principal,
        source: str,
        bucket_name: str,
        key: str,
        *,
        content_type: str | None = None,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
    ) -> Import:
        """Queue an import: it is PENDING until a worker takes it (the job is queued with it)."""
        bucket = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        await self.check_source(source)
        now = _now()
        record = Import(
            id=uuid.uuid4().hex,
            user_id=who.user_id,
            owner=who.name,
            bucket_id=bucket.id,
            bucket=bucket.name,
            key=key,
            source=source,
            status=sm.PENDING,
            created_at=now,
            updated_at=now,
            content_type=content_type,
            expected_md5=expected_md5.lower() if expected_md5 else None,
            expected_sha256=expected_sha256.lower() if expected_sha256 else None,
        )

        async def store(conn: AsyncConnection) -> Import:
            stored = await repo.imports.create(conn, record)
            await repo.enqueue(conn, IMPORT, {"import_id": record.id})
            await repo.events.append(conn, _draft(EventType.IMPORT_CREATED, stored))
            return stored

        return await self._db.write(store)

    async def check_source(self, source: str) -> None:
        """Refuse a URL this server will not fetch, or whose host is not a public address."""
        url = parse_source(source)
        if await self.allow_private():
            return
        addresses = [url.host.strip("[]")] if url.literal else await self._resolve(url.host, url.port)
        refused = refused_addresses(addresses)
        if refused:
            raise SourceNotAllowed(
                f"{url.host} is {', '.join(refused)}: imports reach only public addresses while the"
                f" cluster setting {ALLOW_PRIVATE} is off",
                field="source",
            )

    async def get(self, who: Principal, import_id: str) -> Import:
        """The import, if ``who`` started it or is an admin (404 otherwise)."""
        async with self._db.read() as conn:
            found = await repo.imports.get(conn, import_id)
        if found is None or not (who.is_admin or found.user_id == who.user_id):
            raise NoSuchImport(f"no import {import_id!r}", import_id=import_id)
        return found

    async def list(
        self,
        who: Principal,
        *,
        statuses: list[str],
        bucket: str | None = None,
        user: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Import]:
        """The caller's imports, newest first; an admin sees everyone's (``user`` narrows it)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIST}", field="limit")
        user_id: int | None = who.user_id
        if who.is_admin:
            user_id = None
            if user is not None:
                async with self._db.read() as conn:
                    found = await repo.get_user_by_name(conn, user)
                if found is None:
                    return []
                user_id = found.id
        elif user is not None and user != who.name:
            raise Forbidden("only an admin may list another user's imports")
        async with self._db.read() as conn:
            return await repo.imports.list_imports(
                conn, user_id=user_id, statuses=statuses, bucket=bucket, before=before, limit=limit
            )

    async def cancel(self, who: Principal, import_id: str) -> Import:
        """Stop an import for good: DELETED, its stored parts freed; a running worker stops
        within a second (it finds the status changed when it next reports)."""
        record = await self.get(who, import_id)
        if record.status in FINAL_STATUSES:
            raise ImportFinished(f"import {import_id} is {record.status}", import_status=record.status)

        async def cancel(conn: AsyncConnection) -> bool:
            current = await repo.imports.get(conn, import_id, for_update=True)
            if current is None or current.status not in OPEN_STATUSES:
                return False
            values: dict[str, Any] = {"status": sm.DELETED, "finished_at": _now(), "rate": None}
            await repo.imports.change(conn, import_id, **values)
            if current.upload_id is not None:
                await close_upload(
                    conn, upload_id=current.upload_id, status=sm.DELETED, error=None, actor_id=who.user_id
                )
            await repo.events.append(conn, _draft(EventType.IMPORT_CANCELLED, replace(current, **values)))
            return True

        if not await self._db.write(cancel):
            current = await self.get(who, import_id)
            raise ImportFinished(f"import {import_id} is {current.status}", import_status=current.status)
        return await self.get(who, import_id)

    # -- what a worker records -------------------------------------------------------------

    async def discard_parts(self, upload_id: str) -> None:
        """Free what an import stored so far (its source changed: it starts over)."""
        await self._db.write(functools.partial(release_upload_parts, upload_id=upload_id))

    async def drop_upload(self, upload_id: str) -> None:
        """End an upload made for an import that was cancelled meanwhile."""
        await self._db.write(
            functools.partial(close_upload, upload_id=upload_id, status=sm.DELETED, error=None, actor_id=None)
        )

    async def load(self, import_id: str) -> Import | None:
        async with self._db.read() as conn:
            return await repo.imports.get(conn, import_id)

    async def begin(self, import_id: str, fence: int) -> Import | None:
        """Take the import over for the job run ``fence``: LOADING from now (None: it is over)."""

        async def begin(conn: AsyncConnection) -> Import | None:
            current = await repo.imports.get(conn, import_id, for_update=True)
            if current is None or current.status not in OPEN_STATUSES:
                return None
            values: dict[str, Any] = {"status": sm.LOADING, "fence": fence}
            if current.started_at is None:
                values["started_at"] = _now()
            await repo.imports.change(conn, import_id, if_status=OPEN_STATUSES, **values)
            started = replace(current, **values)
            if current.status == sm.PENDING:
                await repo.events.append(conn, _draft(EventType.IMPORT_PROGRESS, started))
            return started

        return await self._db.write(begin)

    async def record(self, import_id: str, fence: int, *, announce: bool = False, **values: Any) -> bool:
        """Store progress and facts about the source while LOADING; False once the import is
        no longer this run's (cancelled, or taken over by another worker). ``announce``: the
        change is progress users follow (an ``import.progress`` event with it)."""
        return await self._db.write(
            functools.partial(
                _change_loading, import_id=import_id, fence=fence, values=values, announce=announce
            )
        )

    async def fail(self, record: Import, fence: int, code: str, message: str) -> bool:
        """FAILED with a reason; the parts stored so far are freed in the same transaction."""

        async def fail(conn: AsyncConnection) -> bool:
            current = await repo.imports.get(conn, record.id, for_update=True)
            if current is None or current.status not in OPEN_STATUSES or current.fence != fence:
                return False
            values: dict[str, Any] = {
                "status": sm.FAILED,
                "error_code": code,
                "error_message": message[:4000],
                "finished_at": _now(),
                "rate": None,
            }
            await repo.imports.change(conn, record.id, **values)
            if current.upload_id is not None:
                await close_upload(
                    conn, upload_id=current.upload_id, status=sm.FAILED, error=code, actor_id=record.user_id
                )
            await repo.events.append(conn, _draft(EventType.IMPORT_FAILED, replace(current, **values)))
            return True

        return await self._db.write(fail)

    def uploaded(
        self, record: Import, fence: int, size: int
    ) -> Callable[[AsyncConnection, ObjectRecord], Awaitable[None]]:
        """The step that marks the import UPLOADED inside the transaction that makes its object
        visible (``UploadService.finish(also=...)``); a cancel that won the race rolls both back."""

        async def uploaded(conn: AsyncConnection, version: ObjectRecord) -> None:
            current = await repo.imports.get(conn, record.id, for_update=True)
            if current is None or current.status != sm.LOADING or current.fence != fence:
                raise sm.UploadNotOpen(f"import {record.id} was cancelled or taken over")
            values: dict[str, Any] = {
                "status": sm.UPLOADED,
                "version_id": version.version_id,
                "total_size": size,
                "bytes_done": size,
                "finished_at": _now(),
                "rate": None,
            }
            await repo.imports.change(conn, record.id, **values)
            await repo.events.append(conn, _draft(EventType.IMPORT_COMPLETED, replace(current, **values)))

        return uploaded


async def _change_loading(
    conn: AsyncConnection, *, import_id: str, fence: int, values: dict[str, Any], announce: bool
) -> bool:
    changed = await repo.imports.change(conn, import_id, if_status=(sm.LOADING,), if_fence=fence, **values)
    if changed and announce:
        current = await repo.imports.get(conn, import_id)
        if current is not None:
            await repo.events.append(conn, _draft(EventType.IMPORT_PROGRESS, current))
    return changed


def _draft(kind: EventType, record: Import) -> EventDraft:
    """The event of an import's change: the object it makes, and where the import stands."""
    return EventDraft(
        type=kind,
        actor_id=record.user_id,
        bucket=record.bucket,
        bucket_id=record.bucket_id,
        key=record.key,
        version_id=record.version_id,
        size=record.total_size,
        detail={
            "import_id": record.id,
            "status": record.status,
            "source": record.source,
            "bytes_done": record.bytes_done,
            "uploaded_percentage": record.percentage,
            "rate": record.rate,
            "eta_seconds": record.eta_seconds,
            **(
                {"error": {"code": record.error_code, "message": record.error_message}}
                if record.error_code
                else {}
            ),
        },
    )
