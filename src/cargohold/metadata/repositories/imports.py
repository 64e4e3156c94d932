"""Background imports: the client's view of a URL being fetched into an object.

Exposed as ``repo.imports``. Every change is conditional on what the caller
last knew (the status it expects, the fence of the job run that owns the
import), so a cancel and a worker's progress, or two workers after a lease
lapsed, cannot overwrite each other: a refused change returns False.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.imports import Import
from cargohold.metadata.tables import imports, utcnow


def _record(row: Row) -> Import:
    return Import(
        id=row.id,
        user_id=row.user_id,
        owner=row.owner,
        bucket_id=row.bucket_id,
        bucket=row.bucket,
        key=row.key,
        source=row.source,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        content_type=row.content_type,
        expected_md5=row.expected_md5,
        expected_sha256=row.expected_sha256,
        upload_id=row.upload_id,
        total_size=row.total_size,
        bytes_done=row.bytes_done,
        rate=float(row.rate) if row.rate is not None else None,
        attempts=row.attempts,
        resumes=row.resumes,
        restarts=row.restarts,
        validator=row.validator,
        fence=row.fence,
        error_code=row.error_code,
        error_message=row.error_message,
        version_id=row.version_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        seq=row.seq,
    )


async def create(conn: AsyncConnection, record: Import) -> Import:
    """Store a new import; returns it with its ``seq``."""
    result = await conn.execute(
        insert(imports)
        .values(
            id=record.id,
            user_id=record.user_id,
            owner=record.owner,
            bucket_id=record.bucket_id,
            bucket=record.bucket,
            key=record.key,
            source=record.source,
            status=record.status,
            content_type=record.content_type,
            expected_md5=record.expected_md5,
            expected_sha256=record.expected_sha256,
            bytes_done=0,
            attempts=0,
            resumes=0,
            restarts=0,
            fence=0,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )
        .returning(imports.c.seq)
    )
    return replace(record, seq=int(result.scalar_one()))


async def get(conn: AsyncConnection, import_id: str, *, for_update: bool = False) -> Import | None:
    stmt = select(imports).where(imports.c.id == import_id)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _record(row) if row is not None else None


async def list_imports(
    conn: AsyncConnection,
    *,
    user_id: int | None = None,
    statuses: Collection[str] = (),
    bucket: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[Import]:
    """Imports newest first; ``before`` is the ``seq`` cursor of the previous page."""
    stmt = select(imports)
    if user_id is not None:
        stmt = stmt.where(imports.c.user_id == user_id)
    if statuses:
        stmt = stmt.where(imports.c.status.in_(sorted(statuses)))
    if bucket is not None:
        stmt = stmt.where(imports.c.bucket == bucket)
    if before is not None:
        stmt = stmt.where(imports.c.seq < before)
    rows = await conn.execute(stmt.order_by(imports.c.seq.desc()).limit(limit))
    return [_record(row) for row in rows]


async def change(
    conn: AsyncConnection,
    import_id: str,
    *,
    if_status: Collection[str] | None = None,
    if_fence: int | None = None,
    **values: Any,
) -> bool:
    """Set ``values`` if the import is in one of ``if_status`` and run by ``if_fence`` (when given).

    ``updated_at`` follows. Returns whether the row changed.
    """
    values.setdefault("updated_at", utcnow())
    stmt = update(imports).where(imports.c.id == import_id)
    if if_status is not None:
        stmt = stmt.where(imports.c.status.in_(sorted(if_status)))
    if if_fence is not None:
        stmt = stmt.where(imports.c.fence == if_fence)
    result = await conn.execute(stmt.values(**values))
    return result.rowcount > 0
