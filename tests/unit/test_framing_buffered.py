"""FrameDecoder's BufferedProtocol side: get_buffer / buffer_updated, frames received in place.

The transport is simulated exactly as asyncio and uvloop drive a BufferedProtocol: ask for a
buffer, write at most its length into it, report the count, release the view.
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seriatim.protocol import FrameDecoder, FrameError
from seriatim.protocol.framing import Frame

MIB = 1024 * 1024


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def receive(dec: FrameDecoder, data: bytes, reads: list[int]) -> list[Frame]:
    """Deliver ``data`` in reads of (at most) the given sizes, cycling; return the frames."""
    out: list[Frame] = []
    pos = i = 0
    while pos < len(data):
        with dec.get_buffer(-1) as buf:
            assert len(buf) > 0 and not buf.readonly
            n = min(len(buf), reads[i % len(reads)], len(data) - pos)
            buf[:n] = data[pos : pos + n]
        pos += n
        i += 1
        out += dec.buffer_updated(n)
    return out


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


sizes = st.one_of(
    st.integers(8, 64),
    st.integers(8, 9000),
    st.integers(9000, 70_000),  # around and above the 8 KiB scratch used below
)


@settings(max_examples=150, deadline=None)
@given(
    frame_sizes=st.lists(sizes, min_size=1, max_size=12),
    reads=st.lists(st.integers(1, 100_000), min_size=1, max_size=8),
)
def test_any_split_into_reads_yields_the_frames_feed_yields(
    frame_sizes: list[int], reads: list[int]
) -> None:
    payloads = [payload(i, n) for i, n in enumerate(frame_sizes)]
    stream = b"".join(frame(p) for p in payloads)
    whole = FrameDecoder(1 << 20, scratch_bytes=8192, first_frame_buffer_bytes=1024)
    assert whole.feed(stream) == payloads
    dec = FrameDecoder(1 << 20, scratch_bytes=8192, first_frame_buffer_bytes=1024)
    got = receive(dec, stream, reads)
    assert got == payloads
    assert dec.buffered_bytes == 0
    for f in got:  # bytes, or a read-only view: nobody can write into a handed-out frame
        assert isinstance(f, bytes) or (isinstance(f, memoryview) and f.readonly)
    # Decoding on (the decoder's buffers see new reads) never changes a frame handed out.
    receive(dec, stream, reads[::-1])
    assert got == payloads


def test_a_large_frame_is_received_in_its_own_buffer_and_never_touched_again() -> None:
    big, small = payload(1, 3 * MIB + 5), payload(2, 100)
    dec = FrameDecoder(8 * MIB)
    stream = frame(big) + frame(small) + frame(big[::-1])
    first = receive(dec, stream, [64 * 1024])
    assert first == [big, small, big[::-1]]
    assert isinstance(first[0], memoryview) and first[0].readonly
    assert isinstance(first[1], bytes)
    assert dec.allocated_bytes == 64 * 1024  # the frames' buffers went with the frames
    assert receive(dec, frame(small[::-1]) * 3, [10]) == [small[::-1]] * 3
    assert first == [big, small, big[::-1]]


def test_reads_into_a_large_frame_stop_at_its_end() -> None:
    dec = FrameDecoder(4 * MIB, scratch_bytes=8192, first_frame_buffer_bytes=4096)
    body = payload(3, 50_000)
    data = frame(body) + frame(b"n" * 8)
    pos = 0
    got: list[Frame] = []
    while len(got) < 1:
        with dec.get_buffer(-1) as buf:
            n = min(len(buf), len(data) - pos)
            buf[:n] = data[pos : pos + n]
        pos += n
        got += dec.buffer_updated(n)
    assert got == [body] and pos == 4 + len(body)  # the next frame's bytes were not read
    assert receive(dec, data[pos:], [100]) == [b"n" * 8]


def test_a_huge_announced_frame_costs_the_scratch_until_the_scratch_is_full() -> None:
    dec = FrameDecoder(200 * MIB)
    receive(dec, struct.pack(">i", 100 * MIB) + b"abcd", [1 << 20])
    dec.get_buffer(-1).release()  # the transport asks where the next read goes
    assert dec.buffered_bytes == 8  # the prefix and 4 bytes of the body
    assert dec.allocated_bytes == 64 * 1024  # the scratch, nothing for the 100 MiB


@pytest.mark.parametrize("read", [1000, 64 * 1024, 1 << 20])
def test_memory_held_for_a_partial_huge_frame_follows_the_bytes_received(read: int) -> None:
    scratch, first = 64 * 1024, 1 * MIB
    dec = FrameDecoder(200 * MIB, scratch_bytes=scratch, first_frame_buffer_bytes=first)
    received = 0
    receive(dec, struct.pack(">i", 150 * MIB), [4])
    while received < 20 * MIB:
        receive(dec, b"\x01" * read, [read])
        received += read
        dec.get_buffer(-1).release()  # the transport asks where the next read goes
        assert dec.buffered_bytes == 4 + received
        # At most the scratch plus twice what arrived (or the first reservation): never the
        # 150 MiB announced.
        assert dec.allocated_bytes <= scratch + max(first, 2 * received), received


def test_a_frame_grows_past_the_first_reservation_by_doubling() -> None:
    dec = FrameDecoder(64 * MIB, scratch_bytes=8192, first_frame_buffer_bytes=8192)
    body = payload(4, 5 * MIB + 3)
    data = frame(body)
    capacities: list[int] = []
    got: list[Frame] = []
    pos = 0
    while not got:
        with dec.get_buffer(-1) as buf:
            n = min(len(buf), len(data) - pos)
            buf[:n] = data[pos : pos + n]
        pos += n
        capacities.append(dec.allocated_bytes - 8192)
        got = dec.buffer_updated(n)
    assert got == [body]
    grown = sorted(set(capacities) - {0})
    assert grown[-1] == len(body)  # capped at the declared size, exactly
    assert all(b <= 2 * a for a, b in itertools.pairwise(grown))


def test_a_view_still_held_when_the_frame_must_grow_is_worked_around() -> None:
    dec = FrameDecoder(MIB, scratch_bytes=8192, first_frame_buffer_bytes=4096)
    body = payload(5, 100_000)
    data = frame(body)
    pos = 0
    held: list[memoryview] = []  # a transport that keeps its views (asyncio in a traceback)
    got: list[Frame] = []
    while not got:
        buf = dec.get_buffer(-1)
        held.append(buf)
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos : pos + n]
        pos += n
        got = dec.buffer_updated(n)
    assert got == [body]
    for view in held:
        view.release()


@pytest.mark.parametrize("size", [-1, 0, 7, 1025, 2**31 - 1])
def test_a_bad_size_fails_before_any_allocation_and_the_decoder_stays_broken(size: int) -> None:
    dec = FrameDecoder(1024, scratch_bytes=8192)
    with pytest.raises(FrameError):
        receive(dec, struct.pack(">i", size) + b"\x00" * 5000, [1 << 20])
    assert dec.allocated_bytes == 8192 and dec.buffered_bytes == 0
    with dec.get_buffer(-1) as buf:  # a transport may read once more: somewhere to put it
        assert len(buf) > 0
    with pytest.raises(FrameError, match="after a framing error"):
        dec.buffer_updated(len(frame(b"12345678")))
    with pytest.raises(FrameError):
        dec.feed(frame(b"12345678"))


def test_a_bad_size_after_good_frames_in_the_same_read_fails_the_read() -> None:
    dec = FrameDecoder(1024)
    with pytest.raises(FrameError, match="exceeds"):
        receive(dec, frame(b"a" * 8) + struct.pack(">i", 4096), [1 << 20])


def test_a_partial_small_frame_at_the_scratch_end_is_moved_to_the_front() -> None:
    dec = FrameDecoder(1 << 20, scratch_bytes=8192)
    pad = b"p" * (8192 - 4 - 4 - 100)
    mid = payload(6, 3000)  # fits the scratch, but not behind the padding frame
    stream = frame(pad) + frame(mid)
    assert receive(dec, stream, [8192]) == [pad, mid]
    assert dec.allocated_bytes == 8192
