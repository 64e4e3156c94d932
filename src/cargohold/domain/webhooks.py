"""Webhook subscriptions as plain records, and the rules deliveries follow.

A subscription sends the events its owner may see, filtered by type and
optionally by bucket, to one URL, signed per the Standard Webhooks
convention with the subscription's secret. Deliveries go out in event order,
one at a time per subscription: the next event waits until the previous one
was accepted (a 2xx answer). A failure is retried with exponential backoff;
a subscription that has failed for ``disable_after`` is disabled, and a
``webhook.disabled`` event says so.

Targets must be public addresses unless an admin allows private ones
(:func:`forbidden_address`), so that a webhook cannot be used to probe the
network the cluster runs in. The check is made when the subscription is made
and again, against the address actually dialled, on every connection.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cargohold.domain.events import Event
from cargohold.errors import InvalidWebhookSecret, InvalidWebhookUrl

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_URL = 2048
ACTIVE = "active"
DISABLED = "disabled"
#: The type of a test ping's body: it is no event of the log.
PING = "webhook.ping"
WEBHOOK_ID_PATTERN = "^wh_[0-9a-f]{16}$"
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    owner_id: int
    url: str
    event_types: tuple[str, ...]  # parsed filters; empty: every type
    bucket: str | None
    state: str
    created_at: datetime
    cursor: int  # the last event id this subscription is done with
    attempts: int  # failed attempts at the event after the cursor
    delivered: int
    secret_nonce: bytes
    secret_ciphertext: bytes
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    owner_name: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as the deliveries listing shows it."""

    id: int
    webhook_id: str
    event_id: int | None
    event_type: str
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None


def new_webhook_id() -> str:
    return "wh_" + os.urandom(8).hex()


def valid_webhook_id(value: str) -> bool:
    return bool(_WEBHOOK_ID.fullmatch(value))


def new_secret() -> str:
    """A fresh secret as Standard Webhooks writes them: ``whsec_`` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """A secret a client chose: ``whsec_`` and base64 of 24 to 64 bytes (enough to resist guessing)."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhookSecret(f"a webhook secret starts with {SECRET_PREFIX!r}", field="secret")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWebhookSecret("a webhook secret is whsec_ and base64", field="secret") from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise InvalidWebhookSecret(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(raw)}",
            field="secret",
        )
    return secret


#: Characters no outgoing URL (a webhook's, an import's source) may hold: controls, C1 controls
#: and every blank. Spelt out rather than ``\s`` because the OpenAPI document, pydantic's
#: regex engine and Python's ``re`` each mean something slightly different by ``\s``.
URL_FORBIDDEN = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_HAS_FORBIDDEN = re.compile(f"[{URL_FORBIDDEN}]")


def url_pattern(scheme: str) -> str:
    """The whole URL as a regular expression shared by the document and the server: ``scheme``
    (a regex), ``://``, a host part without credentials, then any path without forbidden characters."""
    return f"^{scheme}://[^{URL_FORBIDDEN}/?#@]+([/?#][^{URL_FORBIDDEN}]*)?$"


def has_forbidden_characters(url: str) -> bool:
    return _HAS_FORBIDDEN.search(url) is not None


def host_name_problem(host: str) -> str | None:
    """Why ``host`` can be no DNS name (a label over 63 octets, an empty label, over 253 in all),
    or None. Checked before resolving: the resolver raises on such names instead of answering."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        encoded = host.encode("idna")
    except UnicodeError as exc:
        return f"the host {host[:80]!r} is not a valid host name ({exc})"
    if len(encoded.rstrip(b".")) > 253:
        return "the host name is longer than 253 characters"
    return None


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host; no credentials in it (they would be logged and shown)."""
    if len(url) > MAX_URL:
        raise InvalidWebhookUrl(f"a webhook URL has at most {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"not a URL: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl("a webhook URL is http:// or https:// and names a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("a webhook URL carries no user or password", field="url")
    if port == 0 or has_forbidden_characters(url):
        raise InvalidWebhookUrl("a webhook URL has a port 1-65535 and no blanks", field="url")
    problem = host_name_problem(parts.hostname)
    if problem is not None:
        raise InvalidWebhookUrl(problem, field="url")
    return url


def target(url: str) -> tuple[str, int]:
    """The host and port a URL checked by :func:`check_url` dials."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def forbidden_address(address: str) -> bool:
    """Whether dialling ``address`` could reach the cluster's own network rather than the internet:
    private, loopback, link-local, shared, reserved, multicast or unspecified addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before retrying after ``attempts`` failures in a row: base, 2 base, 4 base ... cap."""
    return float(min(cap, base * 2 ** min(max(attempts - 1, 0), 40)))


def body(event: Event) -> str:
    """A delivery's JSON body as Standard Webhooks has it: ``type``, ``timestamp``, ``data`` (the event)."""
    document: dict[str, Any] = {
        "type": event.type,
        "timestamp": event.document()["time"],
        "data": event.document(),
    }
    return json.dumps(document, separators=(",", ":"))


def ping_body(webhook_id: str, at: datetime) -> str:
    """A test ping's body: shaped like a delivery, of type ``webhook.ping``."""
    stamp = at.isoformat().replace("+00:00", "Z")
    document = {"type": PING, "timestamp": stamp, "data": {"webhook_id": webhook_id, "time": stamp}}
    return json.dumps(document, separators=(",", ":"))


def message_id(event_id: int) -> str:
    """``webhook-id``: the same for every attempt at one event, so receivers can drop repeats."""
    return f"evt_{event_id}"
