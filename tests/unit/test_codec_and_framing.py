"""Codecs rebuild every block from any k shares; frames catch every flipped bit."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cargohold.domain.layout import Layout
from cargohold.erasure.codec import (
    GOLDEN_DIGESTS,
    MirrorCodec,
    ReedSolomonCodec,
    StripeCodec,
    codec_for,
    self_test,
)
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


@pytest.mark.parametrize("spec", ["ec:5+2", "ec:4+2", "ec:8+3", "ec:2+1", "mirror:3", "stripe:4"])
def test_golden_layouts_pass_their_known_answer(spec: str) -> None:
    assert spec in GOLDEN_DIGESTS
    self_test(codec_for(Layout.parse(spec)))


class _OneBitOff(ReedSolomonCodec):
    """Encodes like the real library except one flipped bit in the last parity share.

    It still round-trips from the data shares (join never reads parity), which
    is exactly what the known-answer step exists to catch.
    """

    def encode(self, block: bytes | bytearray | memoryview) -> list[bytes]:
        shares = super().encode(block)
        last = bytearray(shares[-1])
        last[-1] ^= 1
        return [*shares[:-1], bytes(last)]


class _Rotated(StripeCodec):
    """A stripe codec that rotates its input by one byte and undoes it on the way back."""

    def encode(self, block: bytes | bytearray | memoryview) -> list[bytes]:
        data = bytes(block)
        return super().encode(data[1:] + data[:1])

    def join(self, data_shares: list[bytes], block_len: int) -> bytes:  # type: ignore[override]
        data = super().join(data_shares, block_len)
        return data[-1:] + data[:-1]

    def data_views(self, data_shares: list[bytes], block_len: int) -> list[memoryview]:  # type: ignore[override]
        return [memoryview(self.join(data_shares, block_len))]

    def decode(self, shares: Mapping[int, bytes], block_len: int) -> bytes:  # type: ignore[override]
        return self.join([shares[i] for i in range(self.layout.k)], block_len)


@pytest.mark.parametrize(
    ("codec", "spec"),
    [(_OneBitOff, "ec:5+2"), (_OneBitOff, "ec:2+1"), (_Rotated, "stripe:4")],
)
def test_a_codec_that_encodes_differently_fails_the_self_test(codec: type, spec: str) -> None:
    tampered = codec(Layout.parse(spec))
    with pytest.raises(RuntimeError, match="known-answer"):
        self_test(tampered)


def test_a_mirror_that_returns_other_bytes_fails_the_self_test() -> None:
    class Inverted(MirrorCodec):
        def encode(self, block: bytes | bytearray | memoryview) -> list[bytes]:
            return [bytes(b ^ 0xFF for b in bytes(block))] * self.layout.width

    with pytest.raises(RuntimeError, match="known-answer"):
        self_test(Inverted(Layout.parse("mirror:3")))


def test_layouts_without_a_golden_entry_still_round_trip() -> None:
    layout = Layout.parse("ec:3+1")
    assert layout.spec not in GOLDEN_DIGESTS
    self_test(codec_for(layout))

    class Broken(ReedSolomonCodec):
        def decode(self, shares: Mapping[int, bytes | bytearray | memoryview], block_len: int) -> bytes:
            return bytes(block_len)

    with pytest.raises(RuntimeError, match="decode self-test"):
        self_test(Broken(layout))
