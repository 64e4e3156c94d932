"""Copies by reference on SQLite and PostgreSQL: a part lives while any version refers to it."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ObjectRecord
from cargohold.metadata import repositories as repo
from cargohold.metadata.repositories.links import SourceChanged
from tests.integration.test_versions_store import RunDb, Store, _with_store


async def _copy(s: Store, bucket_id: int, source: ObjectRecord, key: str) -> tuple[ObjectRecord, list[str]]:
    return await s.db.write(
        lambda conn: repo.put_object(
            conn, bucket_id, key, source.size, source.etag, "x/y", linked=list(source.parts)
        )
    )


async def _in_use(s: Store, part_id: str) -> bool:
    async with s.db.read() as conn:
        return await repo.part_in_use(conn, part_id)


def test_a_copy_shares_parts_and_inherits_them(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("links-a")
        source, _ = await s.put(b, "src")
        part = source.parts[0].id
        _, freed = await _copy(s, b, source, "dst")
        assert freed == []
        found = await s.latest(b, "dst")
        assert found is not None and [p.id for p in found.parts] == [part]
        assert found.parts[0].shares == source.parts[0].shares
        gone = await s.delete(b, "src")  # the owner goes: the copy takes the part over
        assert gone is not None and gone.freed == []
        assert await _in_use(s, part)
        kept = await s.latest(b, "dst")
        assert kept is not None and [(p.id, p.part_number, p.offset) for p in kept.parts] == [(part, 1, 0)]
        last = await s.delete(b, "dst")  # nothing refers to it any more
        assert last is not None and last.freed == [part]
        assert not await _in_use(s, part)

    _with_store(run_db, body)


def test_removing_a_copy_frees_nothing_and_the_lowest_linker_inherits(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("links-b")
        source, _ = await s.put(b, "src")
        part = source.parts[0].id
        await _copy(s, b, source, "c1")
        await _copy(s, b, source, "c2")
        first = await s.delete(b, "c1")
        assert first is not None and first.freed == []
        replaced = await s.put(b, "src")  # overwriting the owner hands the part to c2
        assert replaced[1] == []
        assert await _in_use(s, part)
        c2 = await s.latest(b, "c2")
        assert c2 is not None and [p.id for p in c2.parts] == [part]
        last = await s.delete(b, "c2")
        assert last is not None and last.freed == [part]

    _with_store(run_db, body)


def test_a_part_already_freed_cannot_be_linked(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("links-c")
        source, _ = await s.put(b, "src")
        await s.delete(b, "src")
        with pytest.raises(SourceChanged):
            await _copy(s, b, source, "late")

        async def latest(conn: AsyncConnection) -> ObjectRecord | None:
            return await repo.get_object(conn, b, "late")

        async with s.db.read() as conn:
            assert await latest(conn) is None

    _with_store(run_db, body)


def test_a_copy_onto_its_own_key_adopts_the_parts_it_replaces(run_db: RunDb) -> None:
    """Unversioned: the new version replaces its source, so it takes the parts over instead of linking."""

    async def body(s: Store) -> None:
        b = await s.bucket("links-d")
        source, _ = await s.put(b, "same")
        part = source.parts[0].id
        copy, freed = await _copy(s, b, source, "same")
        assert freed == []
        assert [p.id for p in copy.parts] == [part]
        assert await _in_use(s, part)
        found = await s.latest(b, "same")
        assert found is not None and found.version_id == copy.version_id
        assert [(p.id, p.part_number, p.offset) for p in found.parts] == [(part, 1, 0)]
        last = await s.delete(b, "same")
        assert last is not None and last.freed == [part]

    _with_store(run_db, body)
