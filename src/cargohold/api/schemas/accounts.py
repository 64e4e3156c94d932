"""Users, API and S3 keys, sessions and bucket grants: request bodies and answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, RootModel

from cargohold.api.schemas.common import (
    USER_NAME_PATTERN,
    Answer,
    Body,
    Count64,
    Password,
    Stamp,
    Text,
    Time,
    not_null,
    without_null,
)


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
        json_schema_extra=without_null("disabled", "role", "password", minProperties=1),
    )
    disabled: Annotated[bool | None, BeforeValidator(not_null)] = None
    role: Annotated[Literal["user", "admin"] | None, BeforeValidator(not_null)] = None
    quota_bytes: Count64 | None = None
    password: Annotated[Password | None, BeforeValidator(not_null)] = None


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
