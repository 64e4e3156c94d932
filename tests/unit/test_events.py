"""The pure parts of events and webhooks: filters, secrets, URLs, addresses, backoff, bodies, SSE parsing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from cargohold.cli.events import read_stream
from cargohold.domain.events import Event, EventType, parse_type_filters, type_matches
from cargohold.domain.webhooks import (
    backoff,
    body,
    check_secret,
    check_url,
    forbidden_address,
    message_id,
    new_secret,
    target,
)
from cargohold.errors import InvalidEventType, InvalidWebhookSecret, InvalidWebhookUrl
from cargohold.service.events import Audience, Selection

EVENT = Event(
    id=7,
    at=datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC),
    type="upload.completed",
    actor_id=3,
    bucket_id=11,
    bucket="media",
    key="a/b.mkv",
    version_id="v" * 32,
    size=5,
    detail={"upload_id": "u1"},
)


def test_type_filters() -> None:
    assert parse_type_filters([]) == ()
    assert parse_type_filters(["*", "upload.*"]) == ()
    assert parse_type_filters(["upload.*", "object.created", "upload.*"]) == ("upload.*", "object.created")
    for bad in ("uploads.*", "upload.finished", "upload", "*.*", "Upload.created", "upload.*x"):
        with pytest.raises(InvalidEventType):
            parse_type_filters([bad])
    with pytest.raises(InvalidEventType):
        parse_type_filters([t.value for t in EventType] + [f"x{n}.y" for n in range(11)])
    assert type_matches((), "node.down")
    assert type_matches(("upload.*",), "upload.progress")
    assert not type_matches(("upload.*",), "uploads.progress")
    assert not type_matches(("upload.completed",), "upload.created")


def test_who_sees_an_event() -> None:
    assert Audience(99, True, frozenset()).sees(EVENT)
    assert Audience(3, False, frozenset()).sees(EVENT)  # its actor
    assert Audience(4, False, frozenset({11})).sees(EVENT)  # the bucket is theirs or granted
    assert not Audience(4, False, frozenset({12})).sees(EVENT)
    cluster_event = Event(8, EVENT.at, "node.down", None, None, None, None, None, None, {})
    assert not Audience(4, False, frozenset({11})).sees(cluster_event)
    assert Selection(("upload.*",), "media").matches(EVENT)
    assert not Selection((), "other").matches(EVENT)


def test_secrets() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert check_secret(secret) == secret
    for bad in ("abc", "whsec_", "whsec_%%%%", "whsec_" + base64.b64encode(b"x" * 23).decode()):
        with pytest.raises(InvalidWebhookSecret):
            check_secret(bad)


def test_urls_and_addresses() -> None:
    assert check_url("https://hooks.example.com/x?y=1") == "https://hooks.example.com/x?y=1"
    assert target("https://hooks.example.com/x") == ("hooks.example.com", 443)
    assert target("http://[2001:db8::1]:8080/") == ("2001:db8::1", 8080)
    for bad in (
        "ftp://h/",
        "http:///x",
        "http://u:p@h/",
        "http://h:0/",
        "http://h/ x",
        "http://h:99999/",
        "http://h/\x85",
        "http://h\u2028/",
        f"https://{'a' * 64}.com/",
        "http://a..b/",
    ):
        with pytest.raises(InvalidWebhookUrl):
            check_url(bad)
    for private in (
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "not-an-address",
    ):
        assert forbidden_address(private), private
    for public in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert not forbidden_address(public), public


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff(10_000, 5, 3600) == 3600


def test_a_body_signed_our_way_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    payload = body(EVENT)
    document = json.loads(payload)
    assert document == {
        "type": "upload.completed",
        "timestamp": "2026-12-02T10:00:00.123456Z",
        "data": EVENT.document(),
    }
    now = int(datetime.now(UTC).timestamp())
    signer = Verifier(secret)
    headers = {
        "webhook-id": message_id(EVENT.id),
        "webhook-timestamp": str(now),
        "webhook-signature": signer.sign(message_id(EVENT.id), datetime.fromtimestamp(now, UTC), payload),
    }
    assert Verifier(secret).verify(payload, headers) == document
    with pytest.raises(Exception, match="signature"):
        Verifier(new_secret()).verify(payload, headers)


def test_server_sent_events_parse() -> None:
    text = 'retry: 2000\nid: 4\n\n: heartbeat\nid: 6\n\nid: 7\nevent: upload.completed\ndata: {"id": 7}\n\n'
    assert list(read_stream(iter(text.splitlines()))) == [(4, None), (6, None), (7, {"id": 7})]
