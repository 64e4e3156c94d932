"""Zones in the store, and where a client is: by network, by GeoIP, or the gateway's zone.

Every gateway keeps the zone list in memory (refreshed every
``auth_cache_seconds``, and at once after a change made here), because
locating a client happens on every read and may not cost a query.

The GeoIP database is opened once, memory-mapped by ``maxminddb``; one lookup
is a few microseconds of tree walking, cheap enough for the event loop.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cargohold.domain.zones import (
    IPAddress,
    IPNetwork,
    Location,
    Zone,
    nearest_zone,
    parse_networks,
    validate_coordinates,
    validate_zone_name,
    zone_by_network,
    zone_distances,
)
from cargohold.errors import NoSuchZone, ZoneInUse
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import zones as zone_repo
from cargohold.service.nodes import NodeRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ZoneView:
    """A zone as the API shows it: its definition, and the nodes that name it."""

    zone: Zone
    defined: bool
    nodes: int


class GeoIP:
    """Coordinates of an address from a MaxMind-format (City) database."""

    def __init__(self, path: Path) -> None:
        import maxminddb

        self.path = path
        self._reader = maxminddb.open_database(str(path))

    def coordinates(self, address: IPAddress) -> tuple[float, float] | None:
        try:
            record: Any = self._reader.get(address)
        except ValueError:
            return None
        location = record.get("location") if isinstance(record, dict) else None
        if not isinstance(location, dict):
            return None
        lat, lon = location.get("latitude"), location.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return float(lat), float(lon)
        return None

    def close(self) -> None:
        self._reader.close()


class ZoneService:
    def __init__(
        self,
        db: Database,
        nodes: NodeRegistry,
        *,
        home: str,
        cache_seconds: float,
        geoip_db: Path | None = None,
    ) -> None:
        self._db = db
        self._nodes = nodes
        self.home = home
        self._cache_seconds = cache_seconds
        self._zones: list[Zone] = []
        self._loaded_at = float("-inf")
        self.geoip = GeoIP(geoip_db) if geoip_db is not None else None

    # -- the list -------------------------------------------------------------

    async def zones(self) -> list[Zone]:
        """Defined zones, from the cache when it is fresh enough."""
        if time.monotonic() - self._loaded_at > self._cache_seconds:
            async with self._db.read() as conn:
                self._zones = await zone_repo.list_zones(conn)
            self._loaded_at = time.monotonic()
        return self._zones

    def cached(self) -> list[Zone]:
        return self._zones

    async def views(self) -> list[ZoneView]:
        """Every zone defined or named by a node (an undefined one has no place and no networks)."""
        self._loaded_at = float("-inf")
        defined = {z.name: z for z in await self.zones()}
        counts: dict[str, int] = {}
        for node in self._nodes.nodes():
            counts[node.zone] = counts.get(node.zone, 0) + 1
        names = sorted(set(defined) | set(counts))
        return [
            ZoneView(defined.get(name, Zone(name)), name in defined, counts.get(name, 0)) for name in names
        ]

    async def put(
        self, name: str, latitude: float | None, longitude: float | None, networks: Sequence[str]
    ) -> tuple[Zone, bool]:
        validate_zone_name(name)
        validate_coordinates(latitude, longitude)
        zone = Zone(name, latitude, longitude, parse_networks(networks, strict=False))
        created = await self._db.write(lambda conn: zone_repo.put_zone(conn, zone))
        self._loaded_at = float("-inf")
        return zone, created

    async def delete(self, name: str) -> None:
        """Forget a zone's definition; refused while nodes still name it (they would lose their place)."""

        async def remove(conn):  # type: ignore[no-untyped-def]
            in_use = await zone_repo.nodes_in_zone(conn, name)
            if in_use:
                raise ZoneInUse(f"zone {name!r} still holds {in_use} node(s): move them first", zone=name)
            if not await zone_repo.delete_zone(conn, name):
                raise NoSuchZone(f"zone {name[:64]!r} is not defined", zone=name[:64])

        await self._db.write(remove)
        self._loaded_at = float("-inf")

    # -- where is the client --------------------------------------------------

    async def locate(self, address: str, *, forwarded: bool = False) -> Location:
        """The client's zone: by the zones' networks, else GeoIP and distance, else this gateway's."""
        zones = await self.zones()
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return Location(
                address, self.home, "gateway", forwarded=forwarded, detail={"reason": "no address"}
            )
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        found = zone_by_network(zones, ip)
        if found is not None:
            return Location(str(ip), found[0].name, "network", network=str(found[1]), forwarded=forwarded)
        if self.geoip is not None:
            place = self.geoip.coordinates(ip)
            if place is not None:
                nearest = nearest_zone(zones, place)
                if nearest is not None:
                    return Location(
                        str(ip),
                        nearest[0].name,
                        "geoip",
                        coordinates=place,
                        distance_km=round(nearest[1], 1),
                        forwarded=forwarded,
                    )
        return Location(str(ip), self.home, "gateway", forwarded=forwarded)

    def distances(self, origin: str) -> dict[str, float]:
        """km from ``origin`` to every zone (cached list; unknown places count as farthest)."""
        return zone_distances(self._zones, origin)

    def close(self) -> None:
        if self.geoip is not None:
            self.geoip.close()


def trusted_networks(raw: Sequence[str]) -> tuple[IPNetwork, ...]:
    return parse_networks(raw, "trusted_proxies")


#: The zone of the client the current request serves (set per request by the gateway):
#: reads order shares by their distance from it. None: no preference (workers, nearest_reads off).
READER_ZONE: ContextVar[str | None] = ContextVar("reader_zone", default=None)
#: Share bytes the current request's reads pulled, by zone of the sending node, when a
#: caller wants them (the gateway in debug mode); None: nobody is counting.
ZONE_BYTES: ContextVar[dict[str, int] | None] = ContextVar("zone_bytes", default=None)
