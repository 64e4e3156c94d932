"""Request and answer models of the zone routes (``/api/v1/zones``, ``/api/v1/whereami``).

Kept apart from the ``schemas`` package: the zone surface is its own small world, and
the document shows these models exactly as the handlers validate them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cargohold.api.schemas import Answer, Body
from cargohold.domain.zones import MAX_NETWORKS

#: What a zone name may be (``domain.zones.validate_zone_name``).
ZONE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Cidr = Annotated[str, Field(max_length=64, description="A client network in CIDR form, host bits zero")]


class PutZone(Body):
    """A zone's whole definition: what is left out is cleared (no coordinates, no networks)."""

    latitude: Latitude | None = None
    longitude: Longitude | None = None
    networks: Annotated[list[Cidr], Field(max_length=MAX_NETWORKS, default_factory=list)]


class ZoneOut(Answer):
    name: str
    #: False for a zone that nodes name but nobody described (no place, no networks).
    defined: bool
    latitude: float | None
    longitude: float | None
    networks: list[str]
    nodes: int


class ZoneList(Answer):
    #: The zone of the gateway that answered.
    home: str
    zones: list[ZoneOut]


class WhereAmI(Answer):
    """Where the gateway placed the caller, and the rule that decided it."""

    address: str
    zone: str
    #: network (a zone's CIDR holds the address), geoip (nearest zone to the database's
    #: coordinates) or gateway (nothing matched: this gateway's own zone).
    decided_by: Annotated[str, Field(json_schema_extra={"enum": ["network", "geoip", "gateway"]})]
    #: True when the address came from X-Forwarded-For or Forwarded sent by a trusted proxy.
    forwarded: bool
    network: str | None
    latitude: float | None
    longitude: float | None
    distance_km: float | None
    gateway_zone: str
