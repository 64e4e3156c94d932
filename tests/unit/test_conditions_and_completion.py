"""Conditional requests and S3's completion rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cargohold.domain.conditions import PreconditionFailed, ReadConditions, WriteCondition, parse_http_date
from cargohold.domain.model import PartRecord
from cargohold.domain.uploads import (
    PENDING,
    S3,
    EntityTooSmall,
    InvalidPartOrder,
    MissingParts,
    PartMismatch,
    Upload,
    completion_order,
)
from cargohold.errors import InvalidArgument, NoSuchKey

MODIFIED = datetime(2026, 12, 1, 10, 0, 0, 250_000, tzinfo=UTC)
BEFORE = "Tue, 01 Dec 2026 09:59:59 GMT"
SAME = "Tue, 01 Dec 2026 10:00:00 GMT"


def conditions(**headers: str) -> ReadConditions:
    return ReadConditions.from_headers({k.replace("_", "-").title(): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("headers", "fresh"),
    [
        ({}, True),
        ({"if_match": '"abc"'}, True),
        ({"if_match": '"x", "abc"'}, True),
        ({"if_match": "*"}, True),
        ({"if_none_match": '"abc"'}, False),
        ({"if_none_match": 'W/"abc"'}, False),
        ({"if_none_match": '"other"'}, True),
        ({"if_modified_since": SAME}, False),
        ({"if_modified_since": BEFORE}, True),
        ({"if_modified_since": "not a date"}, True),
        ({"if_unmodified_since": SAME}, True),
        # If-None-Match decides over If-Modified-Since, If-Match over If-Unmodified-Since.
        ({"if_none_match": '"other"', "if_modified_since": SAME}, True),
        ({"if_match": '"abc"', "if_unmodified_since": BEFORE}, True),
    ],
)
def test_read_conditions_send_or_not_modified(headers: dict[str, str], fresh: bool) -> None:
    assert conditions(**headers).evaluate("abc", MODIFIED) is fresh


@pytest.mark.parametrize(
    "headers",
    [{"if_match": '"other"'}, {"if_unmodified_since": BEFORE}, {"if_match": '"x"', "if_none_match": '"y"'}],
)
def test_read_conditions_that_fail_are_412(headers: dict[str, str]) -> None:
    with pytest.raises(PreconditionFailed):
        conditions(**headers).evaluate("abc", MODIFIED)


def test_a_copy_source_is_refused_where_a_read_would_be_304() -> None:
    with pytest.raises(PreconditionFailed):
        conditions(if_none_match='"abc"').evaluate("abc", MODIFIED, copy=True)
    assert conditions(if_none_match='"z"').evaluate("abc", MODIFIED, copy=True) is True


def test_copy_source_conditions_read_their_own_prefix() -> None:
    found = ReadConditions.from_headers(
        {"x-amz-copy-source-If-Match": '"e"', "If-Match": '"no"'}, "x-amz-copy-source-"
    )
    assert found.if_match == '"e"'


def test_http_dates() -> None:
    assert parse_http_date(SAME) == MODIFIED.replace(microsecond=0)
    assert parse_http_date("yesterday") is None
    assert parse_http_date(None) is None


def test_write_conditions() -> None:
    assert WriteCondition.from_headers({}) is None
    create_only = WriteCondition.from_headers({"If-None-Match": "*"})
    assert create_only is not None
    create_only.check(None)
    with pytest.raises(PreconditionFailed):
        create_only.check("abc")
    replace_only = WriteCondition.from_headers({"If-Match": '"abc"'})
    assert replace_only is not None
    replace_only.check("abc")
    with pytest.raises(PreconditionFailed):
        replace_only.check("def")
    with pytest.raises(NoSuchKey):
        replace_only.check(None)
    with pytest.raises(InvalidArgument):
        WriteCondition.from_headers({"If-None-Match": '"abc"'})


def _upload(protocol: str, sizes: dict[int, int]) -> Upload:
    now = datetime.now(UTC)
    parts = tuple(
        PartRecord(f"p{n}", n, 0, size, "ec:5+2", 1 << 20, f"{n:032x}") for n, size in sorted(sizes.items())
    )
    return Upload(
        "u",
        1,
        "b",
        "k",
        PENDING,
        protocol,
        "x/y",
        None,
        None,
        None,
        None,
        now,
        now,
        now + timedelta(hours=1),
        parts=parts,
    )


MIB5 = 5 * 1024 * 1024


def test_s3_completion_allows_gaps_and_checks_part_sizes() -> None:
    upload = _upload(S3, {1: MIB5, 3: MIB5, 4: 10})
    ordered = completion_order(upload, [(1, None), (3, f'"{3:032x}"'), (4, None)], min_part_size=MIB5)
    assert [p.part_number for p in ordered] == [1, 3, 4]
    with pytest.raises(EntityTooSmall):
        completion_order(
            upload,
            [
                (1, None),
                (4, None),
            ],
            min_part_size=MIB5 + 1,
        )
    with pytest.raises(EntityTooSmall):
        completion_order(_upload(S3, {1: 10, 2: 10}), None, min_part_size=MIB5)
    assert len(completion_order(_upload(S3, {1: 10}), None, min_part_size=MIB5)) == 1


def test_s3_completion_errors() -> None:
    upload = _upload(S3, {1: MIB5, 2: MIB5})
    with pytest.raises(InvalidPartOrder):
        completion_order(upload, [(2, None), (1, None)], min_part_size=MIB5)
    with pytest.raises(PartMismatch):  # S3 answers it as InvalidPart (s3/errors.py)
        completion_order(upload, [(1, '"' + "0" * 32 + '"')], min_part_size=MIB5)
    with pytest.raises(MissingParts):
        completion_order(upload, [(1, None), (5, None)], min_part_size=MIB5)


def test_sessions_keep_contiguous_parts_and_no_size_floor() -> None:
    with pytest.raises(MissingParts):
        completion_order(_upload("session", {1: 10, 3: 10}), None, min_part_size=MIB5)
    assert len(completion_order(_upload("session", {1: 10, 2: 10}), None, min_part_size=MIB5)) == 2
