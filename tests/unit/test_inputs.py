"""The request-value rules of ``api/inputs.py`` and ``domain/names.py``, without sockets."""

from __future__ import annotations

import pytest

from cargohold.api.inputs import (
    INT32_MAX,
    MAX_JSON_DEPTH,
    int_field,
    json_depth,
    parse_int,
    parse_json_object,
)
from cargohold.cli.api_client import object_path
from cargohold.domain.names import validate_bucket, validate_key, validate_user_name
from cargohold.errors import InvalidArgument, InvalidBucketName, InvalidKey


def test_json_depth_skips_strings_and_escapes() -> None:
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1
    assert json_depth(b"[" * 100_000) == 100_000


def test_json_objects_refuse_depth_constants_and_non_objects() -> None:
    assert parse_json_object(b"") == {}
    assert parse_json_object(b'{"a": [[1]]}') == {"a": [[1]]}
    for bad in (
        b"[" * (MAX_JSON_DEPTH + 1),
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[1]",
        b"{",
        b'{"a": "\xff"}',
    ):
        with pytest.raises(InvalidArgument):
            parse_json_object(bad)


def test_integers_are_ascii_and_bounded() -> None:
    assert parse_int("42", "n") == 42
    assert parse_int(" 7 ", "n", maximum=7) == 7
    for text in ("", "-1", "+1", "1.0", "\u00b2", "\u0661", "1e3", str(2**63), "9" * 5000):
        with pytest.raises(InvalidArgument):
            parse_int(text, "n")
    assert int_field({"n": INT32_MAX}, "n", maximum=INT32_MAX) == INT32_MAX
    for value in (INT32_MAX + 1, True, 1.0, "1", -1):
        with pytest.raises(InvalidArgument):
            int_field({"n": value}, "n", maximum=INT32_MAX)


@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "\nabc", "ab", "a..b", "ABC"])
def test_bucket_names_must_match_entirely(name: str) -> None:
    with pytest.raises(InvalidBucketName):
        validate_bucket(name)


@pytest.mark.parametrize("name", ["api", "tus", "docs", "openapi.json", "metrics", "healthz"])
def test_the_gateways_own_path_prefixes_are_no_bucket_names(name: str) -> None:
    with pytest.raises(InvalidBucketName, match="reserved"):
        validate_bucket(name)
    validate_bucket(name + "-x")  # only the exact names are taken


@pytest.mark.parametrize("name", ["bob\n", "bob\r\n", "\nbob", "", "-bob", "b" * 65, "b o b", None, 5])
def test_user_names_must_match_entirely(name: object) -> None:
    with pytest.raises(InvalidArgument):
        validate_user_name(name)


@pytest.mark.parametrize(
    "key", ["a\nb", "a\x00", "a\x7f", "\x85", "a\x9fb", "\u202a", "\u202e", "\u2066", "\u2069", "a\udcff"]
)
def test_keys_refuse_controls_bidi_and_surrogates(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize(
    "key", ["a b", "résumé.pdf", "100%FF", "\u200f", "\u2070", "emoji \U0001f600", "x/rename"]
)
def test_keys_allow_other_text(key: str) -> None:
    assert validate_key(key) == key


def test_actions_come_before_the_key_in_client_paths() -> None:
    assert object_path("b", "x/rename") == "/api/v1/buckets/b/objects/x/rename"
    assert object_path("b", "x/rename", "rename") == "/api/v1/buckets/b/rename/x/rename"
    assert object_path("b", "a b/../c", "restore") == "/api/v1/buckets/b/restore/a%20b/%2E%2E/c"
