"""Share ids become file names on nodes: only safe ids may pass validation."""

from __future__ import annotations

import os.path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cargohold.errors import InvalidShareId
from cargohold.storage.local import validate_share_id

SHARD_DIR = "/data/shares/ab"


@pytest.mark.parametrize(
    "share_id",
    ["a", "0", "abc", "A1._-", "part-12.share-3", "obj.v1.p0.s6", "x" * 160, "a.b.c", "a-"],
)
def test_accepts_plain_ids(share_id: str) -> None:
    assert validate_share_id(share_id) == share_id


@pytest.mark.parametrize(
    "share_id",
    [
        "",
        ".",
        "..",
        "../etc",
        "..%2Fetc",
        "a/b",
        "/etc/passwd",
        "a\\b",
        "a..b",
        "a..",
        ".hidden",
        "-x",
        "_x",
        "a b",
        "a\x00b",
        "a\n",
        "\na",
        "x" * 161,
        "é",
        "a:b",
        "a%2e%2e",
    ],
)
def test_rejects_unsafe_ids(share_id: str) -> None:
    with pytest.raises(InvalidShareId) as info:
        validate_share_id(share_id)
    assert info.value.status == 400
    assert info.value.code == "invalid_share_id"


@pytest.mark.parametrize("value", [None, 5, b"abc", ["a"]])
def test_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidShareId):
        validate_share_id(value)


@given(st.text(max_size=200))
def test_whatever_passes_stays_inside_its_directory(share_id: str) -> None:
    try:
        validate_share_id(share_id)
    except InvalidShareId:
        return
    joined = os.path.normpath(os.path.join(SHARD_DIR, share_id))
    assert os.path.dirname(joined) == SHARD_DIR
    assert os.path.basename(joined) == share_id
    assert 1 <= len(share_id) <= 160


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,159}\Z"))
def test_accepts_the_documented_alphabet(share_id: str) -> None:
    if ".." in share_id:
        with pytest.raises(InvalidShareId):
            validate_share_id(share_id)
    else:
        assert validate_share_id(share_id) == share_id
