"""Event figures for bench/run.py --events: webhook deliveries per second, and event-to-delivery latency.

* deliveries/s: ``--subscriptions`` webhooks (all to one fast receiver on a
  loopback port, which verifies every signature) and a backlog of
  ``--event-count`` events written while the worker is stopped; the worker
  starts and the receiver counts. The rate is taken from the first delivery
  to the last (``S x N`` deliveries), and from the worker's start;
* latency p50/p99: with the worker running, ``--latency-count`` small PUTs one
  after another, each followed (as a user would) by the event reaching a
  ``GET /api/v1/events`` stream and a webhook; latency is the receiving
  time minus the event's ``time`` (stamped when it was appended, inside the
  transaction of the PUT). Same machine, same clock.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.webhook_receiver import Receiver

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _put_many(url: str, bucket: str, count: int, concurrency: int = 16) -> float:
    """``count`` 64-byte PUTs at ``concurrency``; returns seconds taken."""
    keys = iter(range(count))
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        async with session.put(f"/api/v1/buckets/{bucket}") as made:
            assert made.status in (201, 409), await made.text()

        async def worker() -> None:
            for n in keys:
                async with session.put(f"/api/v1/buckets/{bucket}/objects/k{n}", data=b"x" * 64) as reply:
                    assert reply.status == 201, await reply.text()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def _subscribe(client: Any, receiver: Receiver, path: str, **fields: Any) -> None:
    made = client.post("/api/v1/webhooks", json={"url": receiver.url(path), **fields})
    assert made.status_code == 201, made.text
    receiver.expect(path, made.json()["secret"])


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's deliveries did not all arrive")
        time.sleep(0.01)


def throughput(cluster: Cluster, receiver: Receiver, subscriptions: int, events: int) -> dict[str, float]:
    cluster.stop_worker()
    with cluster.client() as client:
        client.put("/api/v1/buckets/bench-backlog").raise_for_status()
        for n in range(subscriptions):
            _subscribe(client, receiver, f"t{n}", bucket="bench-backlog")
    written = asyncio.run(_put_many(cluster.url, "bench-backlog", events))
    total = subscriptions * events
    paths = [f"t{n}" for n in range(subscriptions)]

    def delivered() -> list[Any]:
        return [d for path in paths for d in receiver.received(path)]

    started = time.time()
    cluster.start_worker()
    _wait(lambda: len(delivered()) >= total, timeout=600)
    done = time.time()
    times = sorted(d.received_at for d in delivered())
    assert all(d.verified for d in delivered())
    for n in range(subscriptions):
        ids = receiver.event_ids(f"t{n}")
        assert ids == sorted(set(ids)) and len(ids) == events, f"subscription {n}: out of order or missing"
    return {
        "steady": (total - 1) / max(times[-1] - times[0], 1e-9),
        "from_start": total / (done - started),
        "total": float(total),
        "write_rate": events / written,
    }


async def _stream(url: str, arrived: dict[int, float], ready: asyncio.Event) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(url, headers=AUTH, timeout=timeout) as session:
        params = {"type": "object.created", "bucket": "bench-latency"}
        async with session.get("/api/v1/events", params=params) as reply:
            ready.set()
            async for raw in reply.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    arrived[json.loads(line[6:])["id"]] = time.time()


async def _latency_run(url: str, count: int, receiver: Receiver) -> tuple[dict[int, float], dict[int, float]]:
    arrived: dict[int, float] = {}
    ready = asyncio.Event()
    reader = asyncio.create_task(_stream(url, arrived, ready))
    await ready.wait()
    stamps: dict[int, float] = {}
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        async with session.put("/api/v1/buckets/bench-latency") as made:
            assert made.status in (201, 409)
        for n in range(count):
            async with session.put(f"/api/v1/buckets/bench-latency/objects/l{n}", data=b"y" * 64) as reply:
                assert reply.status == 201
            # One event at a time: wait until both sides have it, as a client that polls would not.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                len(arrived) <= n or len(receiver.event_ids("latency")) <= n
            ):
                await asyncio.sleep(0.001)
    reader.cancel()
    for delivery in receiver.received("latency"):
        stamps[int(delivery.body["data"]["id"])] = _stamp(delivery.body["data"]["time"])
    hooks = {d.event_id: d.received_at for d in receiver.received("latency") if d.event_id is not None}
    stream = {event_id: at for event_id, at in arrived.items() if event_id in stamps}
    return (
        {i: (at - stamps[i]) * 1000 for i, at in stream.items()},
        {i: (at - stamps[i]) * 1000 for i, at in hooks.items() if i in stamps},
    )


def latency(cluster: Cluster, receiver: Receiver, count: int) -> dict[str, list[float]]:
    with cluster.client() as client:
        client.put("/api/v1/buckets/bench-latency").raise_for_status()
        _subscribe(client, receiver, "latency", types=["object.created"], bucket="bench-latency")
    stream, hooks = asyncio.run(_latency_run(cluster.url, count, receiver))
    return {"stream": list(stream.values()), "webhook": list(hooks.values())}


def bench(workdir: Path, args: Any) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    with Cluster(workdir / "cluster", node_count=1, layout="mirror:1") as cluster, Receiver() as receiver:
        threading.current_thread().name = "bench"
        with cluster.client() as client:
            client.patch("/api/v1/events/settings", json={"webhook_allow_private": True}).raise_for_status()
        cluster.start_worker()
        lat = latency(cluster, receiver, args.latency_count)
        figures = throughput(cluster, receiver, args.subscriptions, args.event_count)
    rows.append(
        (
            f"webhook deliveries, {args.subscriptions} subs x {args.event_count} events",
            f"{figures['steady']:8.0f} /s",
            f"target >= 500/s; {figures['from_start']:.0f}/s counting the worker's start",
        )
    )
    rows.append(("backlog written (64 B PUTs x16)", f"{figures['write_rate']:8.0f} /s", "events appended"))
    for name, values in lat.items():
        p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
        rows.append(
            (
                f"event-to-delivery, {name} (n={len(values)})",
                f"p50 {p50:6.1f} ms",
                f"p99 {p99:.1f} ms, mean {statistics.fmean(values):.1f} ms; target p50 <= 100 ms",
            )
        )
    return rows
