"""Listing cursors and version ids: what the document allows is exactly what the server takes."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from aiohttp.test_utils import make_mocked_request

from cargohold.api.inputs import CURSOR_PATTERN, MAX_CURSOR, cursor_query
from cargohold.api.openapi import openapi_document
from cargohold.domain.versions import (
    VERSION_ID_PATTERN,
    InvalidVersionId,
    VersionCursor,
    validate_version_id,
)
from cargohold.errors import InvalidCursor

ODD_TEXTS = ["", "a", "a//1.", "a//1.2", "a//x.2", "//0.", "\u00e9/\u4e2d", "x" * 40, "0" * 31, "A" * 32]


def test_a_cursor_round_trips_whatever_its_key_holds() -> None:
    for key in ("a", "dir/", "a.b//c", "x//1.2", "\u00e9\u4e2d/\U0001f600", ""):
        for row_id, latest_id in ((1, None), (7, 7), (2**63 - 1, 3)):
            cursor = VersionCursor(key, row_id, latest_id)
            assert VersionCursor.decode(cursor.encode()) == cursor
            assert VersionCursor.resume(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "text", ["not-a-cursor", "a//1", "a//-1.2", "a//1.2.3", f"a//{2**63}.", f"a//1.{2**63}"]
)
def test_text_no_cursor_was_made_from_resumes_after_it_as_a_key(text: str) -> None:
    """S3's version-id-marker must be a cursor; the native listing reads other text as a key."""
    with pytest.raises(InvalidCursor) as refused:
        VersionCursor.decode(text)
    assert refused.value.code == "invalid_cursor" and refused.value.status == 400
    assert VersionCursor.resume(text) == VersionCursor.after_key(text) == VersionCursor(text, 0, None)


def _query(value: str) -> str | None:
    return cursor_query(make_mocked_request("GET", "/x?cursor=" + quote(value)))


@pytest.mark.parametrize(
    "text",
    [
        *ODD_TEXTS,
        "x" * MAX_CURSOR,
        "a\x00",
        "a\n",
        "\x7f",
        "\x85",
        "\u202e",
        "\u2066",
        "x" * (MAX_CURSOR + 1),
    ],
)
def test_the_documented_cursor_is_the_one_taken(text: str) -> None:
    documented = len(text) <= MAX_CURSOR and re.fullmatch(CURSOR_PATTERN, text) is not None
    try:
        taken = _query(text)
    except InvalidCursor as refused:
        assert refused.code == "invalid_cursor" and refused.extra["field"] == "cursor"
        assert not documented, text
    else:
        assert documented, text
        assert taken == (text or None)


@pytest.mark.parametrize(
    "text", [*ODD_TEXTS, "0" * 32, "0123456789abcdef" * 2, "0" * 33, "g" * 32, "0" * 32 + "\n"]
)
def test_the_documented_version_id_is_the_one_taken(text: str) -> None:
    documented = re.fullmatch(VERSION_ID_PATTERN, text) is not None
    try:
        validate_version_id(text)
    except InvalidVersionId as refused:
        assert refused.code == "invalid_version_id" and refused.status == 400
        assert not documented, text
    else:
        assert documented, text


def _patterns(node: object) -> list[str]:
    """Every ``pattern`` in a schema, its ``anyOf`` members included."""
    if isinstance(node, dict):
        own = [node["pattern"]] if "pattern" in node else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_every_version_id_a_client_sends_has_the_one_pattern() -> None:
    document = openapi_document()
    objects = document["paths"]["/api/v1/buckets/{bucket}/objects/{key}"]
    sent = [p["schema"] for op in objects.values() for p in op["parameters"] if p["name"] == "version_id"]
    assert len(sent) == 3  # GET, HEAD, DELETE
    bodies = document["components"]["schemas"]
    sent += [bodies[model]["properties"]["version_id"] for model in ("RestoreObject", "CreateShare")]
    assert [_patterns(schema) for schema in sent] == [[VERSION_ID_PATTERN]] * 5
