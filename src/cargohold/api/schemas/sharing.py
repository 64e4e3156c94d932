"""Share links: creating one, what the API shows of it, and a prefix link's listing."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cargohold.api.schemas.common import (
    Answer,
    Body,
    BucketText,
    Count32,
    KeyName,
    KeyText,
    Password,
    Seconds,
    Stamp,
    Time,
    VersionId,
)


class UnlockForm(BaseModel):
    """The share page's form: the link's password."""

    password: Annotated[str, Field(min_length=1)]


def _one_target(schema: dict[str, Any]) -> None:
    """Exactly one of ``key`` and ``prefix``, ``version_id`` only with a key, and at most one
    of ``expires_at`` and ``expires_in`` (a null is as good as leaving it out)."""
    schema["not"] = {
        "required": ["expires_at", "expires_in"],
        "properties": {"expires_at": {"type": "string"}, "expires_in": {"type": "number"}},
    }
    schema["oneOf"] = [
        {"required": ["key"], "properties": {"key": {"type": "string"}, "prefix": {"type": "null"}}},
        {
            "required": ["prefix"],
            "properties": {
                "prefix": {"type": "string"},
                "key": {"type": "null"},
                "version_id": {"type": "null"},
            },
        },
    ]


class CreateShare(Body):
    """A link to one object (``key``, optionally ``version_id``) or to everything under ``prefix``."""

    model_config = ConfigDict(strict=True, extra="ignore", json_schema_extra=_one_target)
    bucket: BucketText
    key: KeyName | None = None
    prefix: KeyText | None = None
    password: Password | None = None
    expires_at: Time | None = None
    expires_in: Seconds | None = None
    max_downloads: Count32 | None = None
    version_id: VersionId | None = None


class ShareOut(Answer):
    id: str
    bucket: str
    key: str | None
    prefix: str | None
    version_id: str | None
    owner: str | None
    status: str
    has_password: bool
    expires_at: Stamp | None
    max_downloads: int | None
    downloads: int
    created_at: Stamp
    revoked_at: Stamp | None


class NewShare(ShareOut):
    token: str
    url: str
    absolute_url: str


class ShareList(Answer):
    shares: list[ShareOut]


class SharedEntry(Answer):
    name: str
    size: int
    etag: str
    content_type: str
    last_modified: Stamp
    url: str


class SharedListing(Answer):
    objects: list[SharedEntry]
    next_cursor: str | None
    truncated: bool
