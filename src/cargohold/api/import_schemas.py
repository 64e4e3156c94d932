"""The JSON bodies of background imports (``/api/v1/imports``), as pydantic models.

Kept apart from ``schemas.py`` (which holds the rest of the native API's
shapes) and built from its field types, so an import's bucket, key, media
type and digests are judged exactly as an upload's are.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cargohold.api.schemas import Answer, Body, BucketText, Hex32, Hex64, KeyName, MediaType, Stamp
from cargohold.domain.imports import MAX_SOURCE_LENGTH, STATUSES
from cargohold.domain.webhooks import url_pattern

#: An http(s) URL; which hosts it may name is the service's rule (``invalid_source``,
#: ``source_not_allowed``): that depends on DNS and a cluster setting, no schema states it.
SOURCE_PATTERN = url_pattern("[Hh][Tt][Tt][Pp][Ss]?")
Source = Annotated[
    str,
    Field(
        min_length=8,
        max_length=MAX_SOURCE_LENGTH,
        pattern=SOURCE_PATTERN,
        description="An http(s) URL. A host that is no valid name, or a port beyond 65535, is 400"
        " invalid_source; a host that resolves to a non-public address is 422 source_not_allowed.",
    ),
]
STATUS_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "enum": list(STATUSES)},
    "description": "Only imports in these statuses (repeat, or separate with commas)",
}


class CreateImport(Body):
    """Fetch ``source`` into ``bucket``/``key`` in the background."""

    source: Source
    bucket: BucketText
    key: KeyName
    expected_sha256: Hex64 | None = None
    expected_md5: Hex32 | None = None
    content_type: MediaType | None = Field(
        None, description="Media type of the object (default: the source's Content-Type)"
    )


class ImportFailure(Answer):
    """Why an import FAILED: a stable ``code`` and a message for people."""

    code: str
    message: str | None


class ImportOut(Answer):
    id: str
    source: str
    bucket: str
    key: str
    owner: str
    status: str = Field(json_schema_extra={"enum": list(STATUSES)})
    size: int | None = Field(description="Bytes of the source, once it said (null until then)")
    bytes_done: int = Field(description="Bytes transferred; never goes backwards")
    uploaded_percentage: float | None
    rate: float | None = Field(description="Bytes/s over the last few seconds while LOADING")
    eta_seconds: float | None
    content_type: str | None
    expected_sha256: str | None
    expected_md5: str | None
    attempts: int = Field(description="Connections to the source opened")
    resumes: int = Field(description="Reconnections that continued with Range")
    restarts: int = Field(description="Reconnections that read the source from its start again")
    error: ImportFailure | None
    version_id: str | None = Field(description="The object version made, once UPLOADED")
    created_at: Stamp
    updated_at: Stamp
    started_at: Stamp | None
    finished_at: Stamp | None


class ImportList(Answer):
    imports: list[ImportOut]
    next_cursor: str | None
