"""What the models of every surface share: base classes, value types and the schemas of
values several operations take (path parameters, version ids, listing cursors), and the error
and status answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema

from cargohold.api.inputs import (
    CONTENT_TYPE_PATTERN,
    CURSOR_PATTERN,
    INT32_MAX,
    INT64_MAX,
    MAX_CONTENT_TYPE,
    MAX_CURSOR,
    MAX_FUTURE,
    MAX_STRING,
    NO_CONTROLS,
    parse_time,
)
from cargohold.domain.names import MAX_KEY_BYTES
from cargohold.domain.versions import VERSION_ID_PATTERN
from cargohold.service.passwords import MAX_LENGTH as MAX_PASSWORD
from cargohold.service.passwords import MIN_LENGTH as MIN_PASSWORD


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Answer(BaseModel):
    """A JSON response body."""

    model_config = ConfigDict(extra="allow")


def not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out but not null")
    return value


def without_null(*names: str, **extra: Any) -> Any:
    """A model's ``json_schema_extra`` that documents ``names`` as optional but never null.

    Pydantic documents ``X | None = None`` as "X or null"; fields that refuse
    an explicit null (``not_null``) must say so, or a fuzzer sends null and is refused.
    """

    def edit(schema: dict[str, Any]) -> None:
        for name in names:
            prop = schema["properties"][name]
            options = [o for o in prop.pop("anyOf") if o != {"type": "null"}]
            prop.update(options[0])
            prop.pop("default", None)
        schema.update(extra)

    return edit


def _time(value: Any) -> datetime:
    moment = parse_time(value)
    if moment is None:
        raise ValueError("must be an ISO 8601 time with a zone")
    if moment - datetime.now(UTC) > MAX_FUTURE:
        raise ValueError(f"lies more than {MAX_FUTURE.days} days ahead")
    return moment


#: An expiry: an ISO 8601 time with a zone, at most ``MAX_FUTURE`` ahead. That it lies in the
#: future is the service's rule (``400 invalid_argument``, field ``expires_at``): "now" moves,
#: so no JSON Schema keyword states it, and the description does.
Time = Annotated[
    datetime,
    BeforeValidator(_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": f"An ISO 8601 time with a zone, in the future and at most {MAX_FUTURE.days}"
            " days ahead",
        }
    ),
]


Text = Annotated[str, Field(max_length=MAX_STRING)]


#: A new password (``passwords.check_password_rules``).
Password = Annotated[str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]


def key_text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise ValueError(f"must be a string of at most {MAX_STRING} characters")
    return value


#: An object key or prefix: any string, since ``domain/names.validate_key`` decides what
#: a key may hold (a lone surrogate is ``invalid_key`` there, which pydantic's ``str``
#: would refuse first as an unparsable string).
KeyText = Annotated[
    str, PlainValidator(key_text), WithJsonSchema({"type": "string", "maxLength": MAX_STRING})
]


def whole(value: Any) -> Any:
    """JSON has one number type: ``172.0`` is the integer 172 (JSON Schema says so too)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: JSON integers from 0, written ``172`` or ``172.0`` (bounds before the validator, so the
#: document shows them as ``minimum``/``maximum``).
Count64 = Annotated[int, Field(ge=0, le=INT64_MAX), BeforeValidator(whole)]


Count32 = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(whole)]


#: A lifetime in whole seconds: at least one, so nothing is born expired (``5e-324`` is not
#: a lifetime), at most ``MAX_FUTURE``; ``60.0`` is the integer 60, as JSON has it.
Seconds = Annotated[int, Field(ge=1, le=int(MAX_FUTURE.total_seconds())), BeforeValidator(whole)]


Hex32 = Annotated[str, Field(pattern="^[0-9a-fA-F]{32}$")]


Hex64 = Annotated[str, Field(pattern="^[0-9a-fA-F]{64}$")]


Stamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


#: A media type as ``inputs.content_type`` judges it.
MediaType = Annotated[str, Field(max_length=MAX_CONTENT_TYPE, pattern=CONTENT_TYPE_PATTERN)]


_NO_CONTROLS = NO_CONTROLS


USER_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


BUCKET_SCHEMA = {
    "type": "string",
    "minLength": 3,
    "maxLength": 63,
    # Every '.' is followed by a letter, digit or '-', so no '..' (``validate_bucket``).
    "pattern": "^[a-z0-9]([.]?[a-z0-9-])*[.]?[a-z0-9]$",
    "description": "3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit, no '..'",
}


#: A bucket name in a body: documented with the bucket rules, judged by ``validate_bucket``
#: (``invalid_bucket_name``) as in a URL.
BucketText = Annotated[str, Field(max_length=MAX_STRING), WithJsonSchema(BUCKET_SCHEMA)]


#: A key segment that is neither empty, "." nor "..", and the segments of a key (the last
#: may be empty: "dir/" is a key), spelled without look-arounds, so any regex engine reads it.
_SEGMENT = (
    f"[^/.{_NO_CONTROLS}][^/{_NO_CONTROLS}]*"
    f"|[.][^/.{_NO_CONTROLS}][^/{_NO_CONTROLS}]*"
    f"|[.][.][^/{_NO_CONTROLS}]+"
)


KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_BYTES,
    "pattern": f"^({_SEGMENT})(/({_SEGMENT}))*/?$",
    "description": f"UTF-8, at most {MAX_KEY_BYTES} bytes, '/' separates segments; no control or"
    " bidirectional formatting characters, no leading '/', no empty, '.' or '..' segment",
    "examples": ["photos/2026/cat.jpg"],
}


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "bucket": BUCKET_SCHEMA,
    "key": KEY_SCHEMA,
    "rest": {**KEY_SCHEMA, "description": "An object key below the shared prefix"},
    "name": {"type": "string", "pattern": USER_NAME_PATTERN, "description": "A user name"},
    "user": {"type": "string", "pattern": USER_NAME_PATTERN, "description": "A user name"},
    "node_id": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
    "zone": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "description": "A zone name"},
    "number": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Part number"},
    "upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "import_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "key_id": {"type": "string", "pattern": "^CH[0-9A-Z]{16}$"},
    "link_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    "webhook_id": {"type": "string", "pattern": "^wh_[0-9a-f]{16}$"},
    "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$", "description": "A share link's token"},
}


#: A version id, as ``versions.validate_version_id`` judges it (``400 invalid_version_id``).
VERSION_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": VERSION_ID_PATTERN,
    "description": "32 lower-case hex digits; anything else is 400 invalid_version_id",
}


#: A listing cursor (``inputs.cursor_query``): every text a key could hold names a position.
CURSOR_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": MAX_CURSOR,
    "pattern": CURSOR_PATTERN,
    "description": "The previous page's next_cursor, given back as it was (or a key to resume"
    " after); longer, or with a control or formatting character, is 400 invalid_cursor",
}


#: A version id in a body: documented with its pattern, judged by ``validate_version_id``
#: (``invalid_version_id``, as in a query).
VersionId = Annotated[str, PlainValidator(key_text), WithJsonSchema(VERSION_ID_SCHEMA)]


#: An object key in a body: documented with the key rules, judged by ``validate_key``.
KeyName = Annotated[str, PlainValidator(key_text), WithJsonSchema(KEY_SCHEMA)]


class Problem(BaseModel):
    """An error (RFC 9457): ``code`` is stable, ``detail`` is for people; some carry more fields."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None


class Status(Answer):
    status: str
