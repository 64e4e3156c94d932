"""Zones: client addresses behind proxies, networks, distances, zone-safe placement, read order."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from cargohold.domain.model import PartRecord, ShareRecord
from cargohold.domain.placement import Candidate, choose_nodes, zone_safe, zone_safe_possible
from cargohold.domain.zones import (
    Zone,
    client_address,
    great_circle_km,
    nearest_zone,
    parse_networks,
    validate_coordinates,
    zone_by_network,
    zone_distances,
)
from cargohold.errors import InvalidArgument
from cargohold.service.objects import share_candidates
from cargohold.service.zones import GeoIP, ZoneService
from cargohold.testing.geoip import write_city_db

CAPE_TOWN = (-33.92, 18.42)
NEW_YORK = (40.71, -74.01)
DALLAS = (32.78, -96.80)
TRUSTED = parse_networks(["10.0.0.0/8"])


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], [], TRUSTED) == ("203.0.113.9", False)
    assert client_address("10.0.0.2", ["198.51.100.1"], [], TRUSTED) == ("198.51.100.1", True)


def test_forwarded_chain_stops_at_the_first_untrusted_hop() -> None:
    # The client forged the first entry; the proxy at 10.0.0.3 appended the real peer.
    chain = ["6.6.6.6, 198.51.100.1, 10.0.0.3"]
    assert client_address("10.0.0.2", chain, [], TRUSTED) == ("198.51.100.1", True)


def test_rfc7239_forwarded_wins_and_takes_ports_and_brackets() -> None:
    forwarded = ['for="[2001:db8::1]:4711";proto=https, for=192.0.2.60:8080']
    assert client_address("10.0.0.2", ["198.51.100.1"], forwarded, TRUSTED) == ("192.0.2.60", True)
    assert client_address("10.0.0.2", [], ['for="[2001:db8::1]:4711"'], TRUSTED) == ("2001:db8::1", True)


def test_most_specific_network_wins() -> None:
    zones = [
        Zone("wide", networks=parse_networks(["10.0.0.0/8"])),
        Zone("narrow", networks=parse_networks(["10.1.0.0/16"])),
    ]
    found = zone_by_network(zones, ipaddress.ip_address("10.1.2.3"))
    assert found is not None and found[0].name == "narrow"
    assert zone_by_network(zones, ipaddress.ip_address("11.0.0.1")) is None


def test_bad_networks_and_coordinates_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="CIDR"):
        parse_networks(["10.0.0.1/8"])
    with pytest.raises(InvalidArgument, match="CIDR"):
        parse_networks(["not-a-net"])
    with pytest.raises(InvalidArgument, match="both"):
        validate_coordinates(1.0, None)
    with pytest.raises(InvalidArgument, match="latitude"):
        validate_coordinates(91.0, 0.0)


def test_great_circle_distances() -> None:
    assert great_circle_km(NEW_YORK, NEW_YORK) == 0
    assert 2150 < great_circle_km(NEW_YORK, DALLAS) < 2250
    assert 12500 < great_circle_km(NEW_YORK, CAPE_TOWN) < 12700
    zones = [Zone("ct", *CAPE_TOWN), Zone("ny", *NEW_YORK), Zone("dal", *DALLAS), Zone("nowhere")]
    found = nearest_zone(zones, (40.0, -75.0))
    assert found is not None and found[0].name == "ny"
    distances = zone_distances(zones, "dal")
    assert distances["dal"] == 0 and distances["ny"] < distances["ct"] < distances["nowhere"]


def test_zone_safe_placement_never_puts_more_than_m_in_a_zone() -> None:
    rng = random.Random(7)
    nodes = [Candidate(i, f"z{i % 3}", 100, rng.randrange(50)) for i in range(9)]
    for _ in range(200):
        chosen = choose_nodes(nodes, 6, rng)
        zones = [nodes[i].zone for i in chosen]
        assert zone_safe(zones, 2), zones
    assert zone_safe_possible(6, 2, {"z0": 3, "z1": 3, "z2": 3})
    assert not zone_safe_possible(7, 2, {"z0": 3, "z1": 3, "z2": 3})  # 5+2 over three zones
    assert not zone_safe_possible(6, 2, {"z0": 4, "z1": 1, "z2": 1})
    assert not zone_safe(["a", "a", "a", "b"], 2)


def _registry(zones: dict[int, str]) -> Any:
    return SimpleNamespace(readable=lambda node_id: True, zone_of=lambda node_id: zones.get(node_id))


def test_reads_take_parity_in_their_zone_before_data_far_away() -> None:
    # ec:2+2: data shares 0, 1 in zones b and c, parity 2, 3 in zone a.
    part = cast(
        PartRecord,
        SimpleNamespace(shares=[ShareRecord(i, node, "ok") for i, node in enumerate((1, 2, 3, 4))]),
    )
    registry = _registry({1: "b", 2: "c", 3: "a", 4: "a"})
    zones = [Zone("a", *NEW_YORK), Zone("b", *DALLAS), Zone("c", *CAPE_TOWN)]
    assert share_candidates(part, registry) == [0, 1, 2, 3]
    assert share_candidates(part, registry, zone_distances(zones, "a")) == [2, 3, 0, 1]
    assert share_candidates(part, registry, zone_distances(zones, "b")) == [0, 2, 3, 1]


def test_geoip_places_a_client_in_the_nearest_zone(tmp_path: Path) -> None:
    path = write_city_db(
        tmp_path / "city.mmdb", {"198.51.100.0/24": (41.0, -73.0), "2001:db8::/32": CAPE_TOWN}
    )
    geo = GeoIP(path)
    try:
        assert geo.coordinates(ipaddress.ip_address("198.51.100.7")) == (41.0, -73.0)
        assert geo.coordinates(ipaddress.ip_address("192.0.2.1")) is None
    finally:
        geo.close()

    class FakeDb:
        def read(self) -> Any:
            raise AssertionError("the zone list is given")

    service = ZoneService(cast(Any, FakeDb()), cast(Any, None), home="home", cache_seconds=1e9, geoip_db=path)
    service._zones = [
        Zone("ny", *NEW_YORK),
        Zone("ct", *CAPE_TOWN),
        Zone("lan", networks=parse_networks(["198.51.100.0/28"])),
    ]
    service._loaded_at = float("inf")
    try:
        by_net = asyncio.run(service.locate("198.51.100.3"))
        assert (by_net.zone, by_net.how, by_net.network) == ("lan", "network", "198.51.100.0/28")
        by_geo = asyncio.run(service.locate("198.51.100.77"))
        assert (by_geo.zone, by_geo.how) == ("ny", "geoip")
        assert by_geo.distance_km is not None and 80 < by_geo.distance_km < 100
        assert asyncio.run(service.locate("2001:db8::5")).zone == "ct"
        fallback = asyncio.run(service.locate("192.0.2.1"))
        assert (fallback.zone, fallback.how) == ("home", "gateway")
    finally:
        service.close()


def test_repair_places_a_lost_share_in_the_zone_that_keeps_the_part_zone_safe() -> None:
    # ec:4+2 over a, b, c: the share lost was zone c's; a and b already hold m = 2 each.
    nodes = [Candidate(i, zone, 100, 0) for i, zone in enumerate(("a", "a", "b", "b", "c", "c"), 1)]
    for seed in range(50):
        chosen = choose_nodes(
            nodes, 1, random.Random(seed), zones_used={"a": 2, "b": 2, "c": 1}, shuffle=False
        )
        assert [nodes[i - 1].zone for i in chosen] == ["c"]
