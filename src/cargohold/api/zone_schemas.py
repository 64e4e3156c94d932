"""Request and answer models of the zone routes (``/api/v1/zones``, ``/api/v1/whereami``).

Kept apart from the ``schemas`` package: the zone surface is its own small world, and
the document shows these models exactly as the handlers validate them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from cargohold.api.schemas import Answer, Body
from cargohold.domain.zones import MAX_NETWORKS

#: What a zone name may be (``domain.zones.validate_zone_name``).
ZONE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])"
_HEX = "[0-9a-fA-F]{1,4}"
_IPV6_ADDRESS = "|".join(
    (
        rf"({_HEX}:){{7}}{_HEX}",
        rf"({_HEX}:){{1,7}}:",
        rf"({_HEX}:){{1,6}}:{_HEX}",
        rf"({_HEX}:){{1,5}}(:{_HEX}){{1,2}}",
        rf"({_HEX}:){{1,4}}(:{_HEX}){{1,3}}",
        rf"({_HEX}:){{1,3}}(:{_HEX}){{1,4}}",
        rf"({_HEX}:){{1,2}}(:{_HEX}){{1,5}}",
        rf"{_HEX}:(:{_HEX}){{1,6}}",
        rf":((:{_HEX}){{1,7}}|:)",
    )
)
_IPV6 = rf"({_IPV6_ADDRESS})/(12[0-8]|1[01][0-9]|[1-9]?[0-9])"
#: A network as the API takes it: an IPv4 or IPv6 address and a prefix length, nothing
#: else (no bare address, no netmask, no leading zeros). The model enforces it, so what the
#: document promises and what is taken are one rule; every string it matches is a network.
CIDR_PATTERN = rf"^({_IPV4}|{_IPV6})$"

Cidr = Annotated[
    str,
    Field(
        max_length=64,
        pattern=CIDR_PATTERN,
        description="A client network: address/prefix-length; host bits are cleared (10.1.2.3/16 is"
        " stored as 10.1.0.0/16)",
    ),
]

#: Both coordinates or neither (``domain.zones.validate_coordinates``), as the document says it.
_COORDINATES: JsonDict = {
    "anyOf": [
        {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
        {
            "required": ["latitude", "longitude"],
            "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
        },
    ]
}


class PutZone(Body):
    """A zone's whole definition: what is left out is cleared (no coordinates, no networks)."""

    model_config = ConfigDict(strict=True, extra="ignore", json_schema_extra=_COORDINATES)

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
