"""Upload sessions: creating and completing one, and what the API shows of an upload."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cargohold.api.inputs import INT32_MAX, INT64_MAX
from cargohold.api.schemas.common import (
    Answer,
    Body,
    BucketText,
    Count64,
    Hex32,
    Hex64,
    KeyName,
    MediaType,
    Stamp,
    Text,
    whole,
)
from cargohold.api.schemas.objects import ObjectOut


class CreateUpload(Body):
    bucket: BucketText
    key: KeyName
    size: Count64 | None = None
    content_type: MediaType | None = None
    md5: Hex32 | None = None
    sha256: Hex64 | None = None
    #: The largest part this upload takes (the gateway's own limit caps it): at least one byte.
    part_size: Annotated[int, Field(ge=1, le=INT64_MAX), BeforeValidator(whole)] | None = None


class ListedPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    part_number: Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(whole)]
    md5: Text | None = None
    etag: Text | None = None


class CompleteUpload(Body):
    parts: list[ListedPart] | None = None
    md5: Hex32 | None = None
    sha256: Hex64 | None = None


class PartOut(Answer):
    part_number: int
    size: int
    #: None for a part grown by Content-Range chunks: no protocol asks for its md5.
    md5: str | None


class UploadState(Answer):
    """An upload without its parts: what each of its server-sent events holds."""

    id: str
    bucket: str
    key: str
    status: str
    protocol: str
    size: int | None
    bytes_received: int
    offset: int
    uploaded_percentage: float | None
    content_type: str | None
    part_size: int | None
    created_at: Stamp
    updated_at: Stamp
    expires_at: Stamp
    error: str | None


class UploadOut(UploadState):
    parts: list[PartOut]


class UploadList(Answer):
    uploads: list[UploadOut]


class ChunkOut(Answer):
    offset: int
    expires_at: Stamp
    status: str


class Completed(Answer):
    upload: UploadOut
    object: ObjectOut
