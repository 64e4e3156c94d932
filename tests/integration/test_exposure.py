"""Least exposure: what a failing node call tells users, and who may read the metadata store."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import aiohttp
import pytest

from cargohold.errors import NodeUnavailable
from cargohold.metadata.db import Database
from cargohold.storage.node_client import NodeClient


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_node_errors_name_the_node_not_its_address() -> None:
    port = _closed_port()

    async def call() -> NodeUnavailable:
        async with aiohttp.ClientSession() as session:
            client = NodeClient(session, f"http://127.0.0.1:{port}", "secret", timeout=2, name="node 9")
            with pytest.raises(NodeUnavailable) as caught:
                await client.health()
            return caught.value

    error = asyncio.run(call())
    assert "node 9" in error.detail
    assert "127.0.0.1" not in error.detail
    assert str(port) not in error.detail


def test_the_sqlite_store_and_its_wal_are_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "meta" / "meta.db"

    async def open_and_write() -> None:
        db = await Database.open(f"sqlite+aiosqlite:///{path}")
        await db.close()

    loose = tmp_path / "old.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)  # a store made before the rule is tightened on open
    asyncio.run(open_and_write())
    files = [path, *path.parent.glob("meta.db-*")]
    assert {p.name for p in files} >= {"meta.db"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o600"}

    async def reopen_old() -> None:
        db = await Database.open(f"sqlite+aiosqlite:///{loose}")
        await db.close()

    asyncio.run(reopen_old())
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
