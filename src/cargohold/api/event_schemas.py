"""The JSON shapes of the event stream's settings and of webhooks, as pydantic models.

Kept apart from ``schemas.py`` (which holds the rest of the native API) so
that each file stays readable; the OpenAPI document is built from both.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema

from cargohold.api.schemas import Answer, Body, BucketText, Stamp
from cargohold.domain.events import MAX_TYPE_FILTERS, TYPE_FILTER_PATTERN
from cargohold.domain.webhooks import MAX_URL, WEBHOOK_ID_PATTERN, url_pattern

#: An http(s) URL: the rest (a host, no credentials, a port 1-65535) is ``check_url``'s rule,
#: answered 400 invalid_webhook_url; a host that is no public address is 422.
WEBHOOK_URL_PATTERN = url_pattern("https?")
SECRET_PATTERN = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"
TYPE_SCHEMA = {
    "type": "string",
    "maxLength": 64,
    "pattern": TYPE_FILTER_PATTERN,
    "description": "An event type ('upload.completed'), a family ('upload.*') or '*'",
}
WEBHOOK_ID_SCHEMA = {"type": "string", "pattern": WEBHOOK_ID_PATTERN}

TypeFilter = Annotated[str, Field(max_length=64), WithJsonSchema(TYPE_SCHEMA)]


class CreateWebhook(Body):
    """A subscription: where to send, which events (default: every type), optionally one bucket's."""

    model_config = ConfigDict(strict=True, extra="ignore")
    url: Annotated[
        str,
        Field(
            max_length=MAX_URL,
            pattern=WEBHOOK_URL_PATTERN,
            description="An http(s) URL. A host that is no valid name, or a port that is 0 or beyond"
            " 65535, is 400 invalid_webhook_url; a host that resolves to a non-public address is 422"
            " webhook_target_forbidden.",
        ),
    ]
    types: Annotated[list[TypeFilter], Field(max_length=MAX_TYPE_FILTERS)] | None = None
    bucket: BucketText | None = None
    secret: (
        Annotated[
            str,
            Field(pattern=SECRET_PATTERN, description="whsec_ and base64 of 24 to 64 random bytes"),
        ]
        | None
    ) = None


class EventSettingsBody(Body):
    """Admin settings of events and webhooks."""

    model_config = ConfigDict(strict=True, extra="forbid")
    webhook_allow_private: bool


class EventSettingsOut(Answer):
    webhook_allow_private: bool


class WebhookOut(Answer):
    id: str
    url: str
    types: list[str]
    bucket: str | None
    owner: str | None
    status: str
    created_at: Stamp
    delivered: int
    cursor: int
    failed_attempts: int
    failing_since: Stamp | None
    next_attempt_at: Stamp | None
    disabled_at: Stamp | None
    disabled_reason: str | None


class NewWebhook(WebhookOut):
    secret: str


class WebhookList(Answer):
    webhooks: list[WebhookOut]


class AttemptOut(Answer):
    id: int
    event_id: int | None
    type: str
    attempt: int
    at: Stamp
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None


class AttemptList(Answer):
    deliveries: list[AttemptOut]
    next_cursor: str | None


class PingOut(Answer):
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None
