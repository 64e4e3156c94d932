"""Alembic environment for the metadata store.

Two ways in. Programmatically (``cargohold.metadata.migrate``) we are handed a
live connection in ``config.attributes["connection"]``, already inside the
transaction and lock the caller holds, so the whole upgrade commits or rolls
back as one. From the ``alembic`` command line (``-c`` the packaged
``alembic.ini``) we build our own engine from ``-x url=...``, ``CARGOHOLD_DB``
or ``sqlalchemy.url``, with the same SQLite connection hooks the server uses.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from cargohold.metadata.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("CARGOHOLD_DB")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set CARGOHOLD_DB")
    return url


async def _run_with_own_engine(url: str) -> None:
    from cargohold.metadata.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_on)
            await conn.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    if config.config_file_name:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_with_own_engine(_url()))


_main()
