"""Zones: what nearest reads save, and what a second gateway adds (``run.py --zones``).

Three zones on three hosts (network namespaces, ``cargohold.testing.zonelab``),
three nodes each, ec:2+4 (two shares of every part in every zone: a readable
set in each), and ``--cross-zone-ms`` of one-way latency between zones added
by the delay proxy. Each zone runs two gateways: one reading nearest-first,
one with ``nearest_reads`` off. A client is the zone of the gateway it uses.

Figures:

* cross-zone share bytes per GiB read through zone a's gateways, on vs off;
* GET latency p50 of a 1 MiB object, per client zone, on vs off;
* aggregate PUT MB/s of concurrent 4 MiB PUTs through one gateway vs two.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cargohold.testing.cluster import ADMIN_KEY
from cargohold.testing.data import sample
from cargohold.testing.netns import Lab, unavailable
from cargohold.testing.zonelab import ZoneLab, zone_bytes

PLACES = {"a": (40.7, -74.0), "b": (32.8, -96.8), "c": (-33.9, 18.4)}
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
MIB = 1024 * 1024
GIB = 1024 * MIB


def _get_all(url: str, keys: list[str]) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as api:
        for key in keys:
            started = time.perf_counter()
            reply = api.get(f"/api/v1/buckets/zones/objects/{key}")
            latencies.append(time.perf_counter() - started)
            assert reply.status_code == 200 and len(reply.content) == MIB
    return latencies


def _put_rate(urls: list[str], count: int, size: int) -> float:
    body = sample(size, seed=99)

    def put(number: int) -> None:
        url = urls[number % len(urls)]
        with httpx.Client(base_url=url, headers=AUTH, timeout=300) as api:
            reply = api.put(f"/api/v1/buckets/zones/objects/put-{len(urls)}-{number}", content=body)
            assert reply.status_code == 201, reply.text

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(count)))
    return count * size / (time.perf_counter() - started) / 1e6


def _cross_zone_rows(gateways: dict[str, tuple[str, str]], keys: list[str]) -> list[tuple[str, str, str]]:
    rows = []
    for mode, index in (("on", 0), ("off", 1)):
        url = gateways["a"][index]
        before = zone_bytes(url, "a")
        _get_all(url, keys)
        after = zone_bytes(url, "a")
        pulled = {z: after.get(z, 0) - before.get(z, 0) for z in after}
        total, read = sum(pulled.values()), len(keys) * MIB
        cross = total - pulled.get("a", 0)
        name = f"cross-zone bytes per GiB read, nearest {mode}"
        rows.append((name, f"{cross / read:8.3f} GiB", f"{total / read:.2f} GiB of shares per GiB"))
    return rows


def _latency_rows(gateways: dict[str, tuple[str, str]], keys: list[str]) -> list[tuple[str, str, str]]:
    rows = []
    for zone, (on, off) in gateways.items():
        p_on = statistics.median(_get_all(on, keys)) * 1000
        p_off = statistics.median(_get_all(off, keys)) * 1000
        name = f"GET 1 MiB p50, client in zone {zone}"
        rows.append((name, f"{p_on:6.0f} ms on", f"{p_off:.0f} ms off ({p_off / p_on:.2f} x on)"))
    return rows


def bench(workdir: Path, args: Any) -> list[tuple[str, str, str]]:
    reason = unavailable()
    if reason is not None:
        raise SystemExit(f"--zones needs network namespaces: {reason}")
    with Lab() as lab:
        zl = ZoneLab(lab, workdir / "zones", PLACES, cross_zone_delay=args.cross_zone_ms / 1000)
        try:
            zl.start_nodes()
            off = {"CARGOHOLD_NEAREST_READS": "false"}
            gateways = {zone: (zl.gateway(zone), zl.gateway(zone, **off)) for zone in PLACES}
            zl.register(gateways["a"][0])
            keys = [f"o{i}" for i in range(args.zone_objects)]
            with httpx.Client(base_url=gateways["a"][0], headers=AUTH, timeout=120) as api:
                assert api.put("/api/v1/buckets/zones").status_code == 201
                for number, key in enumerate(keys):
                    reply = api.put(f"/api/v1/buckets/zones/objects/{key}", content=sample(MIB, seed=number))
                    assert reply.status_code == 201
            rows = _cross_zone_rows(gateways, keys)
            rows += _latency_rows(gateways, keys[: args.latency_gets])
            one = _put_rate([gateways["a"][0]], args.put_objects, 4 * MIB)
            two = _put_rate(list(gateways["a"]), args.put_objects, 4 * MIB)
            rows.append(("PUT 4 MiB x 8 at once, 1 gateway", f"{one:8.1f} MB/s", "1.00 x"))
            rows.append(
                ("PUT 4 MiB x 8 at once, 2 gateways", f"{two:8.1f} MB/s", f"{two / one:.2f} x one gateway")
            )
        finally:
            zl.stop()
    return rows
