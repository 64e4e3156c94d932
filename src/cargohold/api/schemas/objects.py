"""Buckets, objects and their versions: request bodies and answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from cargohold.api.schemas.common import Answer, Body, BucketText, KeyName, Stamp, VersionId
from cargohold.domain.layout import LAYOUT_PATTERN


class CreateBucket(Body):
    #: Documented with the layout rules, judged by ``Layout.parse`` (``invalid_layout``).
    layout: (
        Annotated[
            str,
            Field(max_length=64),
            WithJsonSchema(
                {
                    "type": "string",
                    "pattern": LAYOUT_PATTERN,
                    "description": "ec:K+M (K, M >= 1), mirror:R or stripe:K; 1-32 shares in all",
                }
            ),
        ]
        | None
    ) = None


class SetVersioning(Body):
    #: Documented with the states, judged by the service (its message names them).
    status: Annotated[
        str,
        WithJsonSchema(
            {
                "type": "string",
                "enum": ["enabled", "suspended", "on", "off"],
                "description": "enabled or suspended (on/off also accepted)",
            }
        ),
    ]


class RestoreObject(Body):
    version_id: VersionId


class RenameObject(Body):
    to_key: KeyName
    to_bucket: BucketText | None = None
    overwrite: bool = False


class BucketOut(Answer):
    name: str
    layout: str
    owner: str | None
    created_at: Stamp
    versioning: str


class BucketList(Answer):
    buckets: list[BucketOut]


class BucketView(Answer):
    name: str
    layout: str
    owner: str | None
    versioning: str
    level: str
    created_at: Stamp


class Versioning(Answer):
    bucket: str
    status: str


class ObjectEntry(Answer):
    key: str
    size: int
    etag: str
    content_type: str
    created_at: Stamp
    md5: str | None
    sha256: str | None
    version_id: str


class ObjectOut(ObjectEntry):
    """An object with its bucket (an entry of a listing names no bucket: the listing does)."""

    bucket: str


class RenamedFrom(Answer):
    bucket: str
    key: str
    delete_marker: str | None


class RenamedObject(ObjectOut):
    renamed_from: RenamedFrom


class VersionOut(Answer):
    key: str
    version_id: str
    size: int
    etag: str
    created_at: Stamp
    is_latest: bool
    delete_marker: bool


class ObjectListing(Answer):
    """A page of objects, or with ``?versions`` a page of versions (``versions`` then, not ``objects``)."""

    objects: list[ObjectEntry] | None = None
    common_prefixes: list[str] | None = None
    versions: list[VersionOut] | None = None
    bucket: str | None = None
    key: str | None = None
    next_cursor: str | None
    truncated: bool


class ShareHolder(Answer):
    """A node as any reader of an object may see it: its id and zone, never its URL."""

    id: int
    zone: str
    status: Literal["up", "down"] = Field(description="As the last health probe saw it")
    state: Literal["normal", "draining", "retired", "lost"] = Field(description="The node's life state")
    enabled: bool = Field(description="Switched on (serves reads)")


class SharePlacement(Answer):
    index: int = Field(description="Share index: 0 to k-1 hold data, the rest parity (or copies)")
    node: ShareHolder | None = Field(description="null: no node holds it (never placed, or node removed)")
    state: Literal["ok", "missing"] = Field(description="missing: a read or scrub found it gone")
    available: bool = Field(description="Counts towards redundancy: ok, on a node on, up and in service")


class PartPlacement(Answer):
    part_number: int
    offset: int
    size: int
    layout: str
    needed: int = Field(description="Shares a read needs (k)")
    available: int = Field(description="Shares available now")
    health: Literal["healthy", "degraded", "unreadable"]
    shares: list[SharePlacement]


class ObjectPlacement(ObjectOut):
    """An object with where its shares are: per part, each share's node and its state."""

    layout: str = Field(description="ec:K+M, mirror:R, stripe:K, or inline (kept in the metadata store)")
    health: Literal["healthy", "degraded", "unreadable"]
    parts: list[PartPlacement]
