"""Upload-session figures for bench/run.py: parallel parts, tus, many small parts, completion."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from cargohold.testing.cluster import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
MB = 1_000_000


async def _file_slice(path: Path, start: int, length: int, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        while length > 0:
            data = f.read(min(chunk, length))
            if not data:
                return
            length -= len(data)
            yield data


async def _session(session: aiohttp.ClientSession, key: str, size: int | None = None) -> str:
    body = {"bucket": "bench", "key": key, **({"size": size} if size is not None else {})}
    async with session.post("/api/v1/uploads", json=body) as reply:
        assert reply.status == 201, await reply.text()
        return (await reply.json())["id"]


async def _send_parts(
    session: aiohttp.ClientSession,
    upload_id: str,
    bodies: list[tuple[int, object, int]],
    parallel: int,
) -> None:
    queue = list(bodies)

    async def worker() -> None:
        while queue:
            number, body, length = queue.pop(0)
            # A declared length keeps the body out of chunked encoding, as curl -T does.
            headers = {"Content-Length": str(length)}
            url = f"/api/v1/uploads/{upload_id}/parts/{number}"
            async with session.put(url, data=body, headers=headers) as reply:
                assert reply.status == 200, await reply.text()

    await asyncio.gather(*(worker() for _ in range(parallel)))


async def _complete(session: aiohttp.ClientSession, upload_id: str) -> float:
    started = time.perf_counter()
    async with session.post(f"/api/v1/uploads/{upload_id}/complete", json={}) as reply:
        assert reply.status == 200, await reply.text()
    return time.perf_counter() - started


async def session_upload(url: str, source: Path, parallel: int, part_size: int = 16 << 20) -> float:
    """MB/s of one file sent as parts over ``parallel`` connections, completion included."""
    size = source.stat().st_size
    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(url, headers=AUTH, connector=connector) as session:
        started = time.perf_counter()
        upload_id = await _session(session, f"session-{parallel}", size)
        bodies: list[tuple[int, object, int]] = [
            (n + 1, _file_slice(source, start, min(part_size, size - start)), min(part_size, size - start))
            for n, start in enumerate(range(0, size, part_size))
        ]
        await _send_parts(session, upload_id, bodies, parallel)
        await _complete(session, upload_id)
        return size / (time.perf_counter() - started) / MB


async def small_parts(
    url: str, parts: int = 1000, size: int = 64 << 10, parallel: int = 8
) -> tuple[float, float]:
    """(parts/s for ``parts`` parts of ``size`` bytes at ``parallel``, seconds to complete them)."""
    payload = os.urandom(size)
    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(url, headers=AUTH, connector=connector) as session:
        upload_id = await _session(session, "many-parts")
        started = time.perf_counter()
        await _send_parts(session, upload_id, [(n, payload, size) for n in range(1, parts + 1)], parallel)
        rate = parts / (time.perf_counter() - started)
        return rate, await _complete(session, upload_id)


def tus_upload(url: str, source: Path, chunk_size: int = 8 << 20) -> float:
    """MB/s of one file through tus with the tuspy client."""
    from tusclient import client as tus

    uploader = tus.TusClient(f"{url}/tus/", headers=AUTH).uploader(
        str(source), chunk_size=chunk_size, metadata={"bucket": "bench", "filename": "tus.bin"}
    )
    started = time.perf_counter()
    uploader.upload()
    return source.stat().st_size / (time.perf_counter() - started) / MB
