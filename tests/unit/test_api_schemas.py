"""Request models say exactly what the handlers accept: what the document allows is taken,
what it refuses is refused (the fuzz test finds any drift; these pin each rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from cargohold.api import schemas
from cargohold.api.inputs import CONTENT_TYPE_PATTERN, content_type, validate_body
from cargohold.errors import InvalidArgument
from cargohold.workers.limits import MAX_CONCURRENCY, WorkerLimits


def _documented(model: type[Any], body: dict[str, Any]) -> bool:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    return bool(jsonschema_rs.validator_for(schema).is_valid(body))


def _accepted(model: type[Any], body: dict[str, Any]) -> bool:
    try:
        validate_body(body, model)
    except InvalidArgument:
        return False
    return True


@pytest.mark.parametrize(
    ("model", "body", "ok"),
    [
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "size": 172.0}, True),  # JSON's integer
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "size": 172.5}, False),
        # The largest part an upload takes: at least one byte.
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "part_size": 0}, False),
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "part_size": 1}, True),
        (schemas.CreateUser, {"name": "bob", "quota_bytes": 42285.0}, True),
        (schemas.UpdateNode, {"enabled": None}, False),  # a change is left out, never null
        (schemas.UpdateNode, {"zone": "z", "colour": "red"}, False),
        (schemas.UpdateNode, {"state": "draining"}, True),
        (schemas.UpdateUser, {"disabled": None, "password": None}, False),
        (schemas.UpdateUser, {"quota_bytes": None}, True),  # null lifts the quota
        (schemas.WorkerSettings, {"concurrency": 4.0, "scrub_bandwidth": 0}, True),
        (schemas.WorkerSettings, {"speed": 1}, False),
        (schemas.Login, {"name": "", "password": "x"}, False),
        (schemas.ChangePassword, {"current_password": "x", "new_password": "short"}, False),
        (schemas.Logout, {"refresh_token": "nodot"}, False),
        (schemas.Logout, {"refresh_token": "a" * 32 + ".secret"}, True),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "max_downloads": 0}, False),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "password": "short"}, False),
        (schemas.RenameObject, {"to_key": "x"}, True),
        # A lifetime is whole seconds, at least one: nothing is born expired.
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 1}, True),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 60.0}, True),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 5e-324}, False),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 0}, False),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 1.5}, False),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": 1e300}, False),
        (schemas.CreateShare, {"bucket": "abc", "key": "k", "expires_in": True}, False),
        (schemas.RevokeGrant, {"user": "bob"}, True),
        (schemas.RevokeGrant, {}, False),
        # A media type is printable ASCII, at most 255 characters.
        (
            schemas.CreateUpload,
            {"bucket": "abc", "key": "k", "content_type": "text/plain; charset=utf-8"},
            True,
        ),
        (
            schemas.CreateUpload,
            {"bucket": "abc", "key": "k", "content_type": "\u00db\u0094"},
            False,
        ),
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "content_type": "text/\u00e9"}, False),
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "content_type": "text/plain\n"}, False),
        (schemas.CreateUpload, {"bucket": "abc", "key": "k", "content_type": "a" * 256}, False),
        (schemas.AddNode, {"url": "http://node.example:9000/data/x_1"}, True),
        (schemas.AddNode, {"url": "http://node.example:9000/\u008a\u001f"}, False),
        (schemas.AddNode, {"url": "http://node.example:9000/a b"}, False),
        # A key is an API key unless it asks for S3; any other kind, null included, is refused.
        (schemas.CreateKey, {}, True),
        (schemas.CreateKey, {"kind": "s3", "name": "laptop"}, True),
        (schemas.CreateKey, {"kind": "ftp"}, False),
        (schemas.CreateKey, {"kind": None}, False),
    ],
)
def test_the_document_and_the_handler_agree(model: type[Any], body: dict[str, Any], ok: bool) -> None:
    assert (_documented(model, body), _accepted(model, body)) == (ok, ok)


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"bucket": "abc", "key": "k"}, True),
        ({"bucket": "abc", "prefix": "p/"}, True),
        ({"bucket": "abc", "key": "k", "prefix": None}, True),
        ({"bucket": "abc"}, False),
        ({"bucket": "abc", "key": "k", "prefix": "p/"}, False),
        ({"bucket": "abc", "prefix": "p/", "version_id": "0" * 32}, False),
    ],
)
def test_a_share_names_exactly_one_target_in_the_document(body: dict[str, Any], ok: bool) -> None:
    """The service refuses the rest (``give exactly one of key and prefix``)."""
    assert _documented(schemas.CreateShare, body) is ok


def test_an_empty_change_is_refused_by_the_document_as_by_the_handlers() -> None:
    """The handlers answer ``400 nothing to change``; the document requires one field."""
    for model in (schemas.UpdateNode, schemas.UpdateUser, schemas.WorkerSettings):
        assert _documented(model, {}) is False


def test_worker_settings_out_of_range_are_refused_by_the_document_and_the_limits() -> None:
    limits = WorkerLimits(repair_bandwidth=0, rebalance_bandwidth=0, scrub_bandwidth=0, concurrency=2)
    for body in ({"concurrency": 0}, {"concurrency": MAX_CONCURRENCY + 1}, {"scrub_bandwidth": -1}):
        assert _documented(schemas.WorkerSettings, body) is False
        with pytest.raises(InvalidArgument, match="must be between"):
            limits.merged(validate_body(body, schemas.WorkerSettings).model_dump(exclude_unset=True))


def test_times_need_a_zone_and_lie_within_a_century() -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    assert validate_body({"expires_at": soon.isoformat()}, schemas.CreateKey).expires_at == soon
    for text in ("2030-01-01T00:00:00", "9999-12-31T23:59:59-12:00", "2500-01-01T00:00:00Z", "soon", 5):
        with pytest.raises(InvalidArgument) as refused:
            validate_body({"expires_at": text}, schemas.CreateKey)
        assert refused.value.extra["field"] == "expires_at"


def test_the_content_type_rule_is_the_documented_pattern() -> None:
    """The header, the upload body and tus metadata are judged by the pattern the document shows."""
    documented = schemas.CreateUpload.model_json_schema()["properties"]["content_type"]["anyOf"][0]
    assert (documented["pattern"], documented["maxLength"]) == (CONTENT_TYPE_PATTERN, 255)
    assert content_type(None) == content_type("") == "application/octet-stream"
    assert content_type("image/png") == "image/png"
    for bad in ("text/\u00e9", "a\tb", "x" * 256, "\u0094"):
        with pytest.raises(InvalidArgument):
            content_type(bad)


def test_key_answers_are_documented_as_the_handlers_build_them() -> None:
    """Both kinds of key answer, as ``key_json`` and ``s3_key_json`` make them, fit one union."""
    from cargohold.api.accounts import key_json, s3_key_json
    from cargohold.domain.model import ApiKey, S3Key

    now = datetime.now(UTC)
    api = key_json(ApiKey(key_id="k" * 16, user_id=1, name="cli", secret_hash="h", created_at=now))
    s3 = s3_key_json(S3Key("CH" + "A" * 18, 1, "laptop", b"n", b"c", created_at=now, revoked_at=now))
    assert _documented(schemas.KeyOut, api) and _documented(schemas.KeyOut, s3)
    assert _documented(schemas.NewKey, {**api, "token": "k.s"})
    assert _documented(schemas.NewKey, {**s3, "secret_access_key": "s" * 40})
    assert not _documented(schemas.NewKey, {**s3, "token": "k.s"})  # an S3 key's secret has its name
    assert _documented(schemas.KeyList, {"keys": [s3]}) and not _documented(schemas.KeyList, {"keys": [{}]})
