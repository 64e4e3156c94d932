"""Three zones on three hosts (network namespaces), latency between zones, and nearest reads.

Each zone is one namespace running three nodes; two gateways run in zone
a's namespace, one reading nearest-first and one not. Every connection from
a gateway to a node goes through the delay proxy, which adds latency when
the gateway's zone and the node's differ. ec:2+4 over three zones places two
shares of each part in every zone: zone-safe, and a readable set in each.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest

from cargohold.testing.cluster import ADMIN_KEY
from cargohold.testing.data import sample
from cargohold.testing.netns import Lab, unavailable
from cargohold.testing.zonelab import ZoneLab, zone_bytes

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

PLACES = {"a": (40.7, -74.0), "b": (32.8, -96.8), "c": (-33.9, 18.4)}
OBJECTS = 4
SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def zone_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZoneLab, str, str]]:
    with Lab() as lab:
        running = ZoneLab(lab, tmp_path_factory.mktemp("netns"), PLACES)
        try:
            running.start_nodes()
            near = running.gateway("a")
            far = running.gateway("a", CARGOHOLD_NEAREST_READS="false")
            # The test process is a client in zone a, by its network.
            running.register(near, {"a": [f"10.{lab.net}.0.0/24"]})
            yield running, near, far
        finally:
            running.stop()


def _read_all(url: str, objects: dict[str, bytes]) -> float:
    started = time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as api:
        for key, data in objects.items():
            reply = api.get(f"/api/v1/buckets/lab/objects/{key}")
            assert reply.status_code == 200
            assert hashlib.sha256(reply.content).digest() == hashlib.sha256(data).digest()
    return time.monotonic() - started


def test_nearest_reads_stay_in_zone_and_beat_reading_across(zone_lab: tuple[ZoneLab, str, str]) -> None:
    running, near, far = zone_lab
    objects = {f"o{i}": sample(SIZE, seed=i) for i in range(OBJECTS)}
    with httpx.Client(base_url=near, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as api:
        assert api.put("/api/v1/buckets/lab").status_code == 201
        for key, data in objects.items():
            assert api.put(f"/api/v1/buckets/lab/objects/{key}", content=data).status_code == 201
        whereami = api.get("/api/v1/whereami").json()
        assert (whereami["zone"], whereami["decided_by"]) == ("a", "network")
        assert api.get("/api/v1/health").json()["parts"]["not_zone_safe"] == 0
    before = zone_bytes(near, "a")
    near_time = _read_all(near, objects)
    after = zone_bytes(near, "a")
    pulled = {zone: after.get(zone, 0) - before.get(zone, 0) for zone in after}
    assert pulled["a"] >= 0.9 * sum(pulled.values()), pulled
    far_time = _read_all(far, objects)
    assert near_time < far_time, (near_time, far_time)

    # Zone b goes dark: every object is still readable, nearest reads or not.
    running.stop_zone("b")
    _read_all(near, objects)
    _read_all(far, objects)
