"""Plain records the service layer works with; repositories return these, never rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    secret_hash: str
    role: str  # "admin" | "user"
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    id: int
    name: str
    layout: str  # layout spec, e.g. "ec:5+2"
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShareRecord:
    index: int
    node_id: int
    state: str = "ok"  # "ok" | "missing"


@dataclass(frozen=True, slots=True)
class PartRecord:
    id: str  # also the prefix of its share ids: f"{id}.{index}"
    part_number: int
    offset: int  # first byte of this part within the object
    size: int
    layout: str
    block_size: int
    etag: str
    shares: tuple[ShareRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    id: int
    bucket_id: int
    key: str
    size: int
    etag: str
    content_type: str
    created_at: datetime
    md5: str | None = None
    sha256: str | None = None
    inline_data: bytes | None = None
    parts: tuple[PartRecord, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: int
    url: str
    zone: str
    enabled: bool  # "on": serves reads
    active: bool  # takes new writes
    healthy: bool
    capacity: int
    used: int
    free: int
    shares: int
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int
