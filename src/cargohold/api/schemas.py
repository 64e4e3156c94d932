"""The shapes of the native API's JSON bodies, as pydantic models, and of its path parameters.

Handlers validate request bodies through these models (``inputs.model_body``)
and the OpenAPI document is generated from the same models, so what the
document promises and what a handler accepts cannot drift apart. Field
validators reuse the rules of ``inputs.py`` (bounded integers, times with a
zone no further than ``MAX_FUTURE`` ahead), so a refusal carries the same
``code``, message and ``field`` it always did.

Models are strict (``"1"`` is not an integer, ``1`` is not ``true``) and
ignore unknown fields unless they say otherwise. Response models describe
what the ``*_json`` helpers build; the schema-driven fuzz test checks every
answer against them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    RootModel,
    WithJsonSchema,
)

from cargohold.api.inputs import (
    CONTENT_TYPE_PATTERN,
    INT32_MAX,
    INT64_MAX,
    MAX_CONTENT_TYPE,
    MAX_FUTURE,
    MAX_STRING,
    parse_time,
)
from cargohold.domain.layout import LAYOUT_PATTERN
from cargohold.domain.names import MAX_KEY_BYTES
from cargohold.service.passwords import MAX_LENGTH as MAX_PASSWORD
from cargohold.service.passwords import MIN_LENGTH as MIN_PASSWORD
from cargohold.workers.limits import MAX_BANDWIDTH, MAX_CONCURRENCY


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Answer(BaseModel):
    """A JSON response body."""

    model_config = ConfigDict(extra="allow")


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out but not null")
    return value


def _without_null(*names: str, **extra: Any) -> Any:
    """A model's ``json_schema_extra`` that documents ``names`` as optional but never null.

    Pydantic documents ``X | None = None`` as "X or null"; fields that refuse
    an explicit null (``_not_null``) must say so, or a fuzzer sends null and is refused.
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


def _key_text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise ValueError(f"must be a string of at most {MAX_STRING} characters")
    return value


#: An object key or prefix: any string, since ``domain/names.validate_key`` decides what
#: a key may hold (a lone surrogate is ``invalid_key`` there, which pydantic's ``str``
#: would refuse first as an unparsable string).
KeyText = Annotated[
    str, PlainValidator(_key_text), WithJsonSchema({"type": "string", "maxLength": MAX_STRING})
]


def _whole(value: Any) -> Any:
    """JSON has one number type: ``172.0`` is the integer 172 (JSON Schema says so too)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: JSON integers from 0, written ``172`` or ``172.0`` (bounds before the validator, so the
#: document shows them as ``minimum``/``maximum``).
Count64 = Annotated[int, Field(ge=0, le=INT64_MAX), BeforeValidator(_whole)]
Count32 = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(_whole)]
#: A lifetime in whole seconds: at least one, so nothing is born expired (``5e-324`` is not
#: a lifetime), at most ``MAX_FUTURE``; ``60.0`` is the integer 60, as JSON has it.
Seconds = Annotated[int, Field(ge=1, le=int(MAX_FUTURE.total_seconds())), BeforeValidator(_whole)]
Hex32 = Annotated[str, Field(pattern="^[0-9a-fA-F]{32}$")]
Hex64 = Annotated[str, Field(pattern="^[0-9a-fA-F]{64}$")]
Stamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
#: A media type as ``inputs.content_type`` judges it.
MediaType = Annotated[str, Field(max_length=MAX_CONTENT_TYPE, pattern=CONTENT_TYPE_PATTERN)]

# -- path parameters ------------------------------------------------------------------

_NO_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069"
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
}
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "bucket": BUCKET_SCHEMA,
    "key": KEY_SCHEMA,
    "rest": {**KEY_SCHEMA, "description": "An object key below the shared prefix"},
    "name": {"type": "string", "pattern": USER_NAME_PATTERN, "description": "A user name"},
    "user": {"type": "string", "pattern": USER_NAME_PATTERN, "description": "A user name"},
    "node_id": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
    "number": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Part number"},
    "upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "import_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "key_id": {"type": "string", "pattern": "^CH[0-9A-Z]{16}$"},
    "link_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    "webhook_id": {"type": "string", "pattern": "^wh_[0-9a-f]{16}$"},
    "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$", "description": "A share link's token"},
}


#: An object key in a body: documented with the key rules, judged by ``validate_key``.
KeyName = Annotated[str, PlainValidator(_key_text), WithJsonSchema(KEY_SCHEMA)]


# -- request bodies ----------------------------------------------------------------------


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


class UnlockForm(BaseModel):
    """The share page's form: the link's password."""

    password: Annotated[str, Field(min_length=1)]


class RestoreObject(Body):
    version_id: Annotated[
        str, Field(max_length=64), WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{32}$"})
    ]


class RenameObject(Body):
    to_key: KeyName
    to_bucket: BucketText | None = None
    overwrite: bool = False


class CreateUser(Body):
    name: Annotated[str, Field(pattern=USER_NAME_PATTERN)]
    password: Password | None = None
    role: Literal["user", "admin"] = "user"
    quota_bytes: Count64 | None = None


class UpdateUser(Body):
    """A change: ``quota_bytes: null`` lifts the quota; the other fields are left out, never null."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra=_without_null("disabled", "role", "password", minProperties=1),
    )
    disabled: Annotated[bool | None, BeforeValidator(_not_null)] = None
    role: Annotated[Literal["user", "admin"] | None, BeforeValidator(_not_null)] = None
    quota_bytes: Count64 | None = None
    password: Annotated[Password | None, BeforeValidator(_not_null)] = None


class CreateKey(Body):
    kind: Annotated[
        Literal["api", "s3"],
        Field(description="api: a bearer token for this API; s3: an access key id and secret for SigV4"),
    ] = "api"
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    user: Annotated[str, Field(max_length=64, description="Admins: create it for this user")] | None = None
    expires_at: Time | None = None


class Login(Body):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    password: Text


#: What ``tokens.split_refresh_token`` accepts: a 32-character id, a dot, a secret.
REFRESH_PATTERN = "^[^.]{32}[.][^.]{1,200}$"
RefreshToken = Annotated[str, Field(pattern=REFRESH_PATTERN)]


class Refresh(Body):
    refresh_token: RefreshToken


class Logout(Body):
    refresh_token: RefreshToken | None = None
    all: bool = False


class ChangePassword(Body):
    current_password: Text
    new_password: Password


class CreateGrant(Body):
    user: Annotated[str, Field(pattern=USER_NAME_PATTERN)]
    level: Literal["read", "write", "admin"]


class RevokeGrant(Body):
    user: Annotated[str, Field(pattern=USER_NAME_PATTERN)]


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
        json_schema_extra=_without_null("enabled", "active", "zone", "state", minProperties=1),
    )
    enabled: Annotated[bool | None, BeforeValidator(_not_null)] = None
    active: Annotated[bool | None, BeforeValidator(_not_null)] = None
    zone: Annotated[str | None, BeforeValidator(_not_null), Field(max_length=64)] = None
    state: Annotated[Literal["normal", "draining", "lost"] | None, BeforeValidator(_not_null)] = None


def _setting(low: int, high: int) -> Any:
    """A worker setting: documented with its bounds, judged by ``WorkerLimits.merged`` (whose
    message names the range), an integer as JSON writes it (``4`` or ``4.0``)."""
    return Annotated[
        int | None,
        BeforeValidator(_whole),
        BeforeValidator(_not_null),
        WithJsonSchema({"type": "integer", "minimum": low, "maximum": high}),
    ]


class WorkerSettings(Body):
    """Bandwidths in bytes per second (0 = unlimited) and how many jobs run at once."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"minProperties": 1})
    repair_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    rebalance_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    scrub_bandwidth: _setting(0, MAX_BANDWIDTH) = None  # type: ignore[valid-type]
    concurrency: _setting(1, MAX_CONCURRENCY) = None  # type: ignore[valid-type]


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
    version_id: Annotated[str, Field(max_length=32)] | None = None


class CreateUpload(Body):
    bucket: BucketText
    key: KeyName
    size: Count64 | None = None
    content_type: MediaType | None = None
    md5: Hex32 | None = None
    sha256: Hex64 | None = None
    part_size: Count64 | None = None


class ListedPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    part_number: Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(_whole)]
    md5: Text | None = None
    etag: Text | None = None


class CompleteUpload(Body):
    parts: list[ListedPart] | None = None
    md5: Hex32 | None = None
    sha256: Hex64 | None = None


# -- responses ----------------------------------------------------------------------------


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


class UserOut(Answer):
    name: str
    role: str
    disabled: bool
    quota_bytes: int | None
    has_password: bool
    created_at: Stamp
    updated_at: Stamp


class UserList(Answer):
    users: list[UserOut]


class Me(UserOut):
    key_id: str | None
    session: str | None


class ApiKeyOut(Answer):
    """An API key as listed: its id, never its secret."""

    kind: Literal["api"]
    key_id: str
    name: str
    created_at: Stamp
    expires_at: Stamp | None
    revoked_at: Stamp | None


class S3KeyOut(Answer):
    """An S3 access key as listed: its id (``key_id`` is the same, so one revoke serves both)."""

    kind: Literal["s3"]
    key_id: Annotated[str, Field(description="The access key id")]
    access_key_id: str
    name: str
    created_at: Stamp
    expires_at: Stamp | None
    revoked_at: Stamp | None


class NewApiKey(ApiKeyOut):
    token: Annotated[str, Field(description="<key_id>.<secret>, shown only now")]


class NewS3Key(S3KeyOut):
    secret_access_key: Annotated[str, Field(description="The secret, shown only now")]


#: Either kind of key, told apart by ``kind``.
AnyKey = Annotated[ApiKeyOut | S3KeyOut, Field(discriminator="kind")]


class KeyOut(RootModel[AnyKey]):
    """A key revoked: an API key or an S3 key, whichever the id named."""


class NewKey(RootModel[Annotated[NewApiKey | NewS3Key, Field(discriminator="kind")]]):
    """A key made, with its secret: a bearer token, or an S3 secret access key."""


class KeyList(Answer):
    """Keys of one kind (``?kind=``, API keys by default)."""

    keys: list[AnyKey]


class SessionOut(Answer):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: Stamp
    family_id: str
    user: UserOut


class LoggedOut(Answer):
    revoked_families: int


class GrantOut(Answer):
    user: str
    level: str
    granted_by: str | None
    created_at: Stamp


class GrantList(Answer):
    bucket: str
    owner: str | None
    grants: list[GrantOut]


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


class PartOut(Answer):
    part_number: int
    size: int
    md5: str


class UploadOut(Answer):
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
    parts: list[PartOut]
    created_at: Stamp
    updated_at: Stamp
    expires_at: Stamp
    error: str | None


class UploadList(Answer):
    uploads: list[UploadOut]


class ChunkOut(Answer):
    offset: int
    expires_at: Stamp
    status: str


class Completed(Answer):
    upload: UploadOut
    object: ObjectOut


class EventOut(Answer):
    id: int
    at: Stamp
    user: str | None
    action: str
    bucket: str | None
    key: str | None
    version_id: str | None
    size: int | None
    client: str | None
    user_agent: str | None
    result: str
    status: int | None
    detail: Any = None


class History(Answer):
    events: list[EventOut]
    next_cursor: str | None
