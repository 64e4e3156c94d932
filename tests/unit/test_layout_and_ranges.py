"""Layout parsing, block arithmetic and HTTP range resolution."""

from __future__ import annotations

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cargohold.domain.layout import LAYOUT_PATTERN, Layout, block_span, default_block_size
from cargohold.domain.ranges import ByteRange, parse_range
from cargohold.errors import InvalidLayout, InvalidRange, RangeNotSatisfiable


@pytest.mark.parametrize(
    "spec",
    [
        "ec:2+1",
        "EC:4+2",
        "Mirror:3",
        "stripe:32",
        "ec:31+1",
        "ec:1+31",
        "ec:32+1",
        "ec:2+0",
        "mirror:0",
        "mirror:33",
        "ec:02+1",
        " ec:2+1",
        "ec:2+1 ",
        "raid:5",
        "",
        "ec:2+1\n",
    ],
)
def test_the_documented_layout_pattern_accepts_exactly_what_parse_does(spec: str) -> None:
    try:
        Layout.parse(spec)
        parsed = True
    except InvalidLayout:
        parsed = False
    documented = jsonschema_rs.validator_for({"type": "string", "pattern": LAYOUT_PATTERN}).is_valid(spec)
    assert documented is parsed


@pytest.mark.parametrize(
    ("spec", "k", "m", "quorum"),
    [("ec:5+2", 5, 2, 6), ("EC:4+2", 4, 2, 5), ("mirror:3", 1, 2, 2), ("stripe:4", 4, 0, 4)],
)
def test_parse_layouts(spec: str, k: int, m: int, quorum: int) -> None:
    layout = Layout.parse(spec)
    assert (layout.k, layout.m, layout.write_quorum) == (k, m, quorum)
    assert Layout.parse(layout.spec) == layout
    assert layout.block_size % k == 0 and (layout.block_size // k) % 4096 == 0


@pytest.mark.parametrize("spec", ["ec:5+0", "ec:0+2", "raid5", "mirror:0", "ec:30+5", ""])
def test_bad_layouts(spec: str) -> None:
    with pytest.raises(InvalidLayout):
        Layout.parse(spec)


@given(st.integers(1, 32))
def test_block_size_about_one_mib(k: int) -> None:
    size = default_block_size(k)
    assert 1024 * 1024 <= size < 1024 * 1024 + k * 4096


@given(size=st.integers(0, 10**9), k=st.integers(1, 12))
def test_blocks_cover_size(size: int, k: int) -> None:
    layout = Layout.parse(f"stripe:{k}")
    blocks = layout.blocks_in(size)
    assert sum(layout.block_length(size, i) for i in range(blocks)) == size
    assert all(layout.block_length(size, i) > 0 for i in range(blocks))


@given(st.data())
def test_block_span_maps_range_exactly(data: st.DataObject) -> None:
    layout = Layout.parse("ec:5+2", block_size=1000)
    size = data.draw(st.integers(1, 20_000))
    start = data.draw(st.integers(0, size - 1))
    length = data.draw(st.integers(1, size - start))
    span = block_span(layout, size, start, length)
    assert span is not None
    assert span.first_block * 1000 + span.skip == start
    assert span.last_block == (start + length - 1) // 1000
    assert span.length == length
    assert block_span(layout, size, size, 5) is None


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=2-", 10, ByteRange(2, 9)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-30", 10, ByteRange(0, 9)),
        ("bytes=5-100", 10, ByteRange(5, 9)),
        (" bytes = 1 - 2 ", 10, ByteRange(1, 2)),
    ],
)
def test_ranges(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header", ["bytes=", "bytes=-", "bytes=3-1", "chars=0-1", "bytes=0-1,2-3", "bytes=a-b"]
)
def test_malformed_ranges(header: str) -> None:
    with pytest.raises(InvalidRange):
        parse_range(header, 10)


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-5", 0), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@given(size=st.integers(1, 10**12), a=st.integers(0, 10**12), b=st.integers(0, 10**12))
def test_satisfiable_ranges_stay_inside(size: int, a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    try:
        got = parse_range(f"bytes={lo}-{hi}", size)
    except RangeNotSatisfiable:
        assert lo >= size
        return
    assert got is not None and 0 <= got.start <= got.end < size and got.start == lo
