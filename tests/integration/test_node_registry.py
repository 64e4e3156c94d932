"""The gateway's node registry against a real database and a node that answers slowly.

A health probe takes time; an admin may drain or disable the node while it is
in flight. The probe's answer must update only what it measured, never put
the admin's change back (a draining node that keeps taking writes never
empties), and never bring back a node removed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cargohold.domain.model import NODE_DRAINING
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.nodes import NodeRegistry
from cargohold.storage.node_app import SECRET_HEADER

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]
SECRET = "test-secret"


@contextlib.asynccontextmanager
async def held_health(release: asyncio.Event, asked: asyncio.Event) -> AsyncIterator[str]:
    """A node whose health answer waits until ``release`` is set."""

    async def health(request: web.Request) -> web.Response:
        assert request.headers[SECRET_HEADER] == SECRET
        asked.set()
        await release.wait()
        body = {"status": "ok", "zone": "z", "capacity": 1000, "used": 10, "free": 990, "shares": 1}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def test_a_probe_in_flight_does_not_undo_a_drain(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        release, asked = asyncio.Event(), asyncio.Event()
        async with held_health(release, asked) as url, aiohttp.ClientSession() as session:
            node = await db.write(lambda conn: repo.add_node(conn, url, "z"))
            registry = NodeRegistry(db, session, SECRET, timeout=10, probe_interval=60)
            await registry.load()
            probing = asyncio.create_task(registry.probe_all())
            await asyncio.wait_for(asked.wait(), 10)
            await registry.update(node.id, state=NODE_DRAINING)
            release.set()
            await probing
            seen = registry.get(node.id)
            assert seen is not None
            assert (seen.state, seen.healthy, seen.used, seen.writable) == (NODE_DRAINING, True, 10, False)
            await registry.load()
            again = registry.get(node.id)
            assert again is not None and (again.state, again.used) == (NODE_DRAINING, 10)

    run_db(scenario)


def test_a_node_removed_while_its_probe_is_in_flight_stays_removed(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        release, asked = asyncio.Event(), asyncio.Event()
        async with held_health(release, asked) as url, aiohttp.ClientSession() as session:
            node = await db.write(lambda conn: repo.add_node(conn, url, "z"))
            registry = NodeRegistry(db, session, SECRET, timeout=10, probe_interval=60)
            await registry.load()
            probing = asyncio.create_task(registry.probe_all())
            await asyncio.wait_for(asked.wait(), 10)
            await registry.remove(node.id)
            release.set()
            await probing  # the probe's figures for a deleted row are no error
            assert registry.get(node.id) is None
            async with db.read() as conn:
                assert [n.id for n in await repo.list_nodes(conn)] == []

    run_db(scenario)


def test_a_load_that_overlaps_an_admin_change_reads_again(
    run_db: RunDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(db: Database) -> None:
        node = await db.write(lambda conn: repo.add_node(conn, "http://127.0.0.1:9", "z"))
        read_done, go_on = asyncio.Event(), asyncio.Event()
        real_list_nodes = repo.list_nodes
        reads = 0

        async def list_nodes_then_wait(conn: Any) -> Any:
            nonlocal reads
            reads += 1
            found = await real_list_nodes(conn)
            if reads == 1:  # the first read finishes before the change, and returns after it
                read_done.set()
                await go_on.wait()
            return found

        monkeypatch.setattr(repo, "list_nodes", list_nodes_then_wait)
        async with aiohttp.ClientSession() as session:
            registry = NodeRegistry(db, session, SECRET, timeout=10, probe_interval=60)
            loading = asyncio.create_task(registry.load())
            await asyncio.wait_for(read_done.wait(), 10)
            await registry.update(node.id, enabled=False)
            go_on.set()
            await loading
            seen = registry.get(node.id)
            assert seen is not None and seen.enabled is False
            assert reads == 2

    run_db(scenario)
