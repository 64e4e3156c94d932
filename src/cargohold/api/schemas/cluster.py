"""Storage nodes and background work (admin): request bodies and answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from cargohold.api.schemas.common import Answer, Body, Stamp, not_null, whole, without_null
from cargohold.workers.limits import MAX_BANDWIDTH, MAX_CONCURRENCY

_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"


#: An http(s) base URL naming an ASCII host name or address and at most a port and a path.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"


#: A DNS name whose last label starts with a letter, a dotted IPv4 address or a bracketed IPv6 one.
_HOST = f"({_LABEL}\\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?|{_OCTET}(\\.{_OCTET}){{3}}|\\[[0-9A-Fa-f:.]+\\]"


#: The path is visible ASCII but '?' and '#', spelled out: "\s" means other characters to
#: Python than to JSON Schema's ECMA regexes, so a path the document allowed could be refused.
NODE_URL_PATTERN = f"^https?://({_HOST})(:{_PORT})?(/[\\x21\\x22\\x24-\\x3e\\x40-\\x7e]*)?$"


def _node_url(value: str) -> str:
    """A base URL the gateway can dial: ``http://`` alone names no host and must not reach a probe."""
    if not re.fullmatch(NODE_URL_PATTERN, value):
        raise ValueError(
            "must be http(s)://host[:port][/path]: an ASCII host name or [address], a port 1-65535"
        )
    return value


class AddNode(Body):
    url: Annotated[
        str,
        Field(max_length=255),
        AfterValidator(_node_url),
        WithJsonSchema({"type": "string", "maxLength": 255, "pattern": NODE_URL_PATTERN}),
    ]
    zone: Annotated[str, Field(max_length=64)] | None = None


class UpdateNode(Body):
    """A change of one or more fields, each left out or given (never null)."""

    #: An empty change is refused (``nothing to change``), and so is one naming unknown fields.
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra=without_null("enabled", "active", "zone", "state", minProperties=1),
    )
    enabled: Annotated[bool | None, BeforeValidator(not_null)] = None
    active: Annotated[bool | None, BeforeValidator(not_null)] = None
    zone: Annotated[str | None, BeforeValidator(not_null), Field(max_length=64)] = None
    state: Annotated[Literal["normal", "draining", "lost"] | None, BeforeValidator(not_null)] = None


def _setting(low: int, high: int) -> Any:
    """A worker setting: documented with its bounds, judged by ``WorkerLimits.merged`` (whose
    message names the range), an integer as JSON writes it (``4`` or ``4.0``)."""
    return Annotated[
        int | None,
        BeforeValidator(whole),
        BeforeValidator(not_null),
        WithJsonSchema({"type": "integer", "minimum": low, "maximum": high}),
    ]


class WorkerSettings(Body):
    """Bandwidths in bytes per second (0 = unlimited) and how many jobs run at once."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"minProperties": 1})
    repair_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    rebalance_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    scrub_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    concurrency: _setting(1, MAX_CONCURRENCY) = None  # type: ignore[valid-type]


class NodeOut(Answer):
    id: int
    url: str
    zone: str
    enabled: bool
    active: bool
    healthy: bool
    status: str
    state: str
    capacity: int | None
    used: int | None
    free: int | None
    fill: float
    shares: int
    last_seen: Stamp | None


class NodeList(Answer):
    nodes: list[NodeOut]


class JobList(Answer):
    jobs: list[dict[str, Any]]
    next_cursor: str | None


class Queued(Answer):
    queued: int


class Report(Answer):
    """A free-form report (health, worker settings): its fields are listed in the operator docs."""
