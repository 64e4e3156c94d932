"""Apply the Alembic migrations from code, with no ``alembic.ini`` on disk.

Every role calls :func:`upgrade` at start-up (through ``Database.open``), so
several gateways may start at once against one PostgreSQL: the upgrade runs in
one transaction holding an advisory lock, and the losers of the race find the
schema already at head. On SQLite the ``BEGIN IMMEDIATE`` of the write engine
serialises starters the same way. DDL is transactional on both engines, so a
failed migration leaves the previous schema intact.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every process.
_PG_MIGRATION_LOCK = 0x6361_7267  # "carg"


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (``None`` when it was never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade_sync(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _sqlite_pragma(connection: Connection, pragma: str) -> list[tuple[object, ...]]:
    """Run a PRAGMA on the raw connection: outside any transaction, none is begun."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {pragma}")
        return list(cursor.fetchall())
    finally:
        cursor.close()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` in one transaction.

    ``engine`` must come from :func:`cargohold.metadata.db.make_engine` (its
    SQLite hooks make DDL transactional); pass its write variant on SQLite.
    """
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Rebuilding a table (SQLite cannot alter constraints) drops the old
            # one; with enforcement on, that drop would fire ON DELETE actions
            # in the tables that reference it. The pragma is a no-op inside a
            # transaction, so it is set before BEGIN and checked after COMMIT.
            await conn.run_sync(_sqlite_pragma, "foreign_keys=OFF")
        try:
            async with conn.begin():
                if not sqlite:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                await conn.run_sync(_upgrade_sync, revision)
            if sqlite:
                broken = await conn.run_sync(_sqlite_pragma, "foreign_key_check")
                if broken:
                    raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        finally:
            if sqlite:
                await conn.run_sync(_sqlite_pragma, "foreign_keys=ON")
