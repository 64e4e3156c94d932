"""Zones: where nodes, gateways and clients are, and how far apart (pure: no I/O).

A zone is a name, optional coordinates and the client networks that belong
to it. Deciding where a client is goes, in order: the zones' networks (an
operator's statement beats any guess), then coordinates from a GeoIP
database and the nearest zone by great-circle distance, then the gateway's
own zone. Each answer carries the rule that decided it, so ``whereami`` can
tell a client why.

Distances order zones for reads: a zone without coordinates is treated as
farther than any that has them (but nearer than nothing), so reads still
prefer the client's own zone over every other.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cargohold.errors import InvalidArgument

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ZONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The most networks one zone may list (they are matched on every located request).
MAX_NETWORKS = 1024
EARTH_RADIUS_KM = 6371.0088
#: The distance given to a zone whose place is unknown: farther than any real one.
UNKNOWN_KM = 4 * EARTH_RADIUS_KM


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    latitude: float | None = None
    longitude: float | None = None
    networks: tuple[IPNetwork, ...] = ()

    @property
    def place(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return self.latitude, self.longitude


@dataclass(frozen=True, slots=True)
class Location:
    """Where a client was placed, and why (``how``: network, geoip or gateway)."""

    address: str
    zone: str
    how: str
    network: str | None = None
    coordinates: tuple[float, float] | None = None
    distance_km: float | None = None
    forwarded: bool = False
    detail: dict[str, str] = field(default_factory=dict)


def validate_zone_name(name: object) -> str:
    """1-64 letters, digits, '.', '_', '-': a zone name appears in URLs, metrics and headers."""
    if not isinstance(name, str) or not _ZONE_NAME.fullmatch(name):
        raise InvalidArgument(
            "zone name must be 1-64 characters of letters, digits, '.', '_', '-', starting with a"
            " letter or digit",
            field="name",
        )
    return name


def parse_networks(
    raw: Iterable[str], field_name: str = "networks", *, strict: bool = True
) -> tuple[IPNetwork, ...]:
    """CIDRs as networks; host bits set (``10.0.0.1/8``) are refused, they are usually a typo.

    ``strict=False`` clears them instead: what the zone API does, whose document can state
    the form of a network (a pattern) but not which host bits a prefix leaves (the answer
    shows the network as stored).
    """
    parsed: list[IPNetwork] = []
    for item in raw:
        try:
            parsed.append(ipaddress.ip_network(item, strict=strict))
        except ValueError as exc:
            raise InvalidArgument(
                f"{field_name}: {item[:60]!r} is not a network in CIDR form: {exc}", field=field_name
            ) from exc
    if len(parsed) > MAX_NETWORKS:
        raise InvalidArgument(f"{field_name}: at most {MAX_NETWORKS} networks", field=field_name)
    return tuple(parsed)


def validate_coordinates(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        raise InvalidArgument("send both latitude and longitude, or neither", field="latitude")
    if latitude is not None and not -90 <= latitude <= 90:
        raise InvalidArgument("latitude must lie between -90 and 90", field="latitude")
    if longitude is not None and not -180 <= longitude <= 180:
        raise InvalidArgument("longitude must lie between -180 and 180", field="longitude")


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance in km: exact enough to rank zones, stable for antipodes."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def zone_by_network(zones: Sequence[Zone], address: IPAddress) -> tuple[Zone, IPNetwork] | None:
    """The zone whose network holds ``address``; the most specific network wins."""
    best: tuple[Zone, IPNetwork] | None = None
    for zone in zones:
        for network in zone.networks:
            inside = address.version == network.version and address in network
            if inside and (best is None or network.prefixlen > best[1].prefixlen):
                best = (zone, network)
    return best


def nearest_zone(zones: Sequence[Zone], place: tuple[float, float]) -> tuple[Zone, float] | None:
    """The zone with coordinates nearest to ``place`` (ties: by name, so every gateway agrees)."""
    ranked = sorted(
        ((great_circle_km(place, zone.place), zone.name, zone) for zone in zones if zone.place is not None),
    )
    return (ranked[0][2], ranked[0][0]) if ranked else None


def zone_distances(zones: Sequence[Zone], origin: str) -> dict[str, float]:
    """Distance in km from zone ``origin`` to every zone known (0 for itself).

    Unknown places get ``UNKNOWN_KM`` so they sort after every located zone.
    """
    by_name = {z.name: z for z in zones}
    home = by_name.get(origin)
    distances: dict[str, float] = {origin: 0.0}
    for zone in zones:
        if zone.name == origin:
            continue
        if home is not None and home.place is not None and zone.place is not None:
            distances[zone.name] = great_circle_km(home.place, zone.place)
        else:
            distances[zone.name] = UNKNOWN_KM
    return distances


def zone_cost(distances: dict[str, float], zone: str | None) -> float:
    """How far a share in ``zone`` is for a reader with these ``distances`` (unknown: farthest)."""
    if zone is None:
        return 2 * UNKNOWN_KM
    return distances.get(zone, UNKNOWN_KM)


def _forwarded_for(values: Sequence[str]) -> list[str]:
    """The ``for=`` addresses of RFC 7239 ``Forwarded`` headers, first hop first."""
    found: list[str] = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, raw = pair.strip().partition("=")
                if name.strip().lower() != "for":
                    continue
                raw = raw.strip().strip('"')
                if raw.startswith("["):  # "[2001:db8::1]:4711"
                    raw = raw[1:].split("]", 1)[0]
                elif raw.count(":") == 1:  # "192.0.2.60:4711"
                    raw = raw.split(":", 1)[0]
                found.append(raw)
    return found


def client_address(
    peer: str,
    x_forwarded_for: Sequence[str],
    forwarded: Sequence[str],
    trusted: Sequence[IPNetwork],
) -> tuple[str, bool]:
    """The client's address, and whether a proxy's header named it.

    Headers are believed only from a trusted proxy, hop by hop from the
    right: each address a trusted proxy appended is the next hop back, until
    one that is not a trusted proxy (the client) or the list runs out.
    ``Forwarded`` wins over ``X-Forwarded-For`` when both are present.
    """
    chain = (
        _forwarded_for(forwarded)
        if forwarded
        else [item.strip() for value in x_forwarded_for for item in value.split(",") if item.strip()]
    )
    current = peer
    used = False
    while chain and _is_trusted(current, trusted):
        current = chain.pop()
        used = True
    return current, used


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)
