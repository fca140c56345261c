"""FrameDecoder: size checked before buffering, split feeds, no quadratic copying."""

from __future__ import annotations

import struct
import time

import pytest

from seriatim.protocol import FrameDecoder, FrameError


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def test_one_frame_in_one_feed_is_returned_without_its_prefix() -> None:
    dec = FrameDecoder(1024)
    assert dec.feed(frame(b"12345678")) == [b"12345678"]
    assert dec.buffered_bytes == 0


def test_many_tiny_frames_in_one_feed_come_back_in_order() -> None:
    payloads = [bytes([i % 256]) * (8 + i % 5) for i in range(10_000)]
    data = b"".join(frame(p) for p in payloads)
    dec = FrameDecoder(1024)
    start = time.perf_counter()
    assert dec.feed(data) == payloads
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 13, 64])
def test_frames_split_at_every_boundary_are_reassembled(chunk: int) -> None:
    payloads = [b"a" * 8, b"b" * 9, b"c" * 100, b"d" * 8]
    data = b"".join(frame(p) for p in payloads)
    dec = FrameDecoder(1024)
    out: list[bytes] = []
    for i in range(0, len(data), chunk):
        out.extend(dec.feed(data[i : i + chunk]))
    assert out == payloads
    assert dec.buffered_bytes == 0


def test_mutable_input_is_copied_not_aliased() -> None:
    dec = FrameDecoder(1024)
    buf = bytearray(frame(b"x" * 20))
    assert dec.feed(memoryview(buf)[:10]) == []
    rest = buf[10:]
    buf[:] = b"\xff" * len(buf)  # the transport reuses its buffer
    assert dec.feed(rest) == [b"x" * 20]


@pytest.mark.parametrize("size", [-1, 0, 7, -(2**31)])
def test_declared_size_below_the_minimum_is_rejected(size: int) -> None:
    dec = FrameDecoder(1024)
    with pytest.raises(FrameError, match="below the minimum"):
        dec.feed(struct.pack(">i", size) + b"\x00" * 8)
    with pytest.raises(FrameError):  # the stream is out of sync for good
        dec.feed(frame(b"12345678"))


@pytest.mark.parametrize("size", [1025, 2**31 - 1])
def test_oversized_declared_size_is_rejected_before_anything_is_buffered(size: int) -> None:
    dec = FrameDecoder(1024)
    with pytest.raises(FrameError, match="exceeds the limit"):
        dec.feed(struct.pack(">i", size) + b"\x00" * 100)
    assert dec.buffered_bytes == 0


def test_oversized_size_split_across_feeds_is_rejected_on_the_fourth_byte() -> None:
    dec = FrameDecoder(1024)
    prefix = struct.pack(">i", 2**31 - 1)
    for b in prefix[:3]:
        assert dec.feed(bytes([b])) == []
    assert dec.buffered_bytes == 3
    with pytest.raises(FrameError):
        dec.feed(prefix[3:])


def test_memory_follows_received_bytes_not_the_declared_size() -> None:
    dec = FrameDecoder(200 * 1024 * 1024)
    dec.feed(struct.pack(">i", 150 * 1024 * 1024) + b"x" * 10)
    assert dec.buffered_bytes == 14  # the prefix and 10 bytes of the body
    assert dec.allocated_bytes == 64 * 1024  # the scratch: nothing for the 150 MiB


def test_a_100_mib_frame_in_64_kib_chunks_is_linear() -> None:
    size = 100 * 1024 * 1024
    payload = b"\x07" * size
    dec = FrameDecoder(size)
    data = memoryview(frame(payload))
    step = 64 * 1024
    start = time.perf_counter()
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out.extend(dec.feed(bytes(data[i : i + step])))
    elapsed = time.perf_counter() - start
    assert len(out) == 1 and len(out[0]) == size and out[0] == payload
    assert elapsed < 3.0, elapsed  # quadratic concatenation would take minutes


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    dec = FrameDecoder(16)
    assert dec.feed(frame(b"z" * 16)) == [b"z" * 16]


def test_constructor_rejects_a_limit_below_the_minimum_frame() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(4)
