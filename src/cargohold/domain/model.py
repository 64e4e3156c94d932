"""Plain records the service layer works with; repositories return these, never rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ADMIN = "admin"
USER = "user"
ROLES = (ADMIN, USER)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str  # ADMIN | USER
    disabled: bool
    created_at: datetime
    updated_at: datetime
    quota_bytes: int | None = None
    password_hash: str | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a call: the user, and the credential that proved it.

    Every service call that touches a bucket takes one; the access service
    decides from it (see ``service/access.py``).
    """

    user_id: int
    name: str
    role: str
    key_id: str | None = None  # signed in with an API key
    session: str | None = None  # signed in with a token: its refresh family

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    user_id: int
    name: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class S3Key:
    """An S3 access key; the secret stays encrypted here (``service/s3keys.py`` opens it)."""

    access_key_id: str
    user_id: int
    name: str
    secret_nonce: bytes
    secret_ciphertext: bytes
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class Bucket:
    id: int
    name: str
    layout: str  # layout spec, e.g. "ec:5+2"
    created_at: datetime
    owner_id: int = 0
    versioning: str = "off"  # "off" | "enabled" | "suspended"

    @property
    def versioned(self) -> bool:
        """New writes add versions (instead of replacing the unversioned one)."""
        return self.versioning == "enabled"


@dataclass(frozen=True, slots=True)
class ShareRecord:
    index: int
    node_id: int | None  # None: a degraded write found no node for it (state "missing")
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
    version_id: str = ""
    is_latest: bool = True
    delete_marker: bool = False
    versioned: bool = False
    #: Response headers stored with this version (lower-case names): Content-Disposition,
    #: Cache-Control, x-amz-meta-*, ... Empty in listings, which never read them.
    headers: dict[str, str] = field(default_factory=dict)


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
    #: Life state: "normal", "draining", "retired" or "lost" (up/down is ``healthy``).
    state: str = "normal"

    @property
    def writable(self) -> bool:
        """Takes new shares: on, active, up, in normal service and not full."""
        return self.enabled and self.active and self.healthy and self.state == NODE_NORMAL and self.free > 0

    @property
    def fill(self) -> float:
        return self.used / self.capacity if self.capacity > 0 else 0.0


NODE_NORMAL = "normal"
NODE_DRAINING = "draining"
NODE_RETIRED = "retired"
NODE_LOST = "lost"
NODE_STATES = (NODE_NORMAL, NODE_DRAINING, NODE_RETIRED, NODE_LOST)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job as the jobs API shows it."""

    id: int
    kind: str
    state: str
    payload: dict
    attempts: int
    priority: int
    progress_bytes: int
    total_bytes: int | None
    errors: int
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
