"""Small MaxMind-format (GeoIP2 City) databases for tests: a few networks and their coordinates.

Written with ``mmdb-writer`` and read back by the same ``maxminddb`` reader
the gateway uses, so a test exercises the real file format, not a stub.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_city_db(path: Path, places: Mapping[str, tuple[float, float]]) -> Path:
    """A City database mapping each CIDR in ``places`` to (latitude, longitude)."""
    from mmdb_writer import MmdbF64, MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    for cidr, (latitude, longitude) in places.items():
        location = {"latitude": MmdbF64(latitude), "longitude": MmdbF64(longitude)}
        writer.insert_network(IPSet([cidr]), {"location": location})
    writer.to_db_file(str(path))
    return path
