"""Codecs rebuild every block from any k shares; frames catch every flipped bit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cargohold.domain.layout import Layout
from cargohold.erasure.codec import codec_for
from cargohold.erasure.framing import HEADER_SIZE, frame_header, parse_header, verify_payload
from cargohold.errors import ReadUnavailable, ShareCorrupt
from cargohold.testing.data import sample

LAYOUTS = ["ec:5+2", "ec:4+2", "ec:3+1", "mirror:3", "stripe:3"]


@pytest.mark.parametrize("spec", LAYOUTS)
@pytest.mark.parametrize("length", [1, 4095, 100_000])
def test_any_k_shares_rebuild_the_block(spec: str, length: int) -> None:
    codec = codec_for(Layout.parse(spec))
    layout = codec.layout
    block = sample(min(length, layout.block_size), seed=length)
    shares = codec.encode(block)
    assert len(shares) == layout.width
    for kept in itertools.combinations(range(layout.width), layout.k):
        assert codec.decode({i: shares[i] for i in kept}, len(block)) == block
    assert codec.join(shares[: layout.k], len(block)) == block


@pytest.mark.parametrize("spec", ["ec:5+2", "stripe:3"])
def test_too_few_shares(spec: str) -> None:
    codec = codec_for(Layout.parse(spec))
    shares = codec.encode(b"x" * 1000)
    with pytest.raises(ReadUnavailable):
        codec.decode({i: shares[i] for i in range(codec.layout.k - 1)}, 1000)


@settings(max_examples=50)
@given(payload=st.binary(min_size=1, max_size=4096), index=st.integers(0, 2**32 - 1), data=st.data())
def test_frames_detect_any_flipped_byte(payload: bytes, index: int, data: st.DataObject) -> None:
    header = frame_header(index, payload)
    got_index, length, digest = parse_header(header, index)
    assert (got_index, length) == (index, len(payload))
    verify_payload(index, payload, digest)
    position = data.draw(st.integers(0, len(payload) - 1))
    flipped = bytearray(payload)
    flipped[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ShareCorrupt):
        verify_payload(index, bytes(flipped), digest)


def test_frame_in_the_wrong_place_is_corrupt() -> None:
    header = frame_header(3, b"abc")
    assert len(header) == HEADER_SIZE
    with pytest.raises(ShareCorrupt):
        parse_header(header, 4)
    with pytest.raises(ShareCorrupt):
        parse_header(b"\0" * HEADER_SIZE)
