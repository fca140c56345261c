"""Property tests for seriatim.records: round trips, and hostile bytes only raise our errors."""

from __future__ import annotations

import struct

import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seriatim.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from seriatim.records import (
    Compression,
    Record,
    build_batch,
    iter_batches,
    iter_records,
    validate_batch,
)
from seriatim.records.varint import decode_varint, decode_varlong, encode_varint, encode_varlong

EXPECTED_ERRORS = (CorruptRecordError, InvalidRecordError, RecordTooLargeError)

optional_bytes = st.none() | st.binary(max_size=300)
headers = st.lists(st.tuples(st.text(max_size=20), optional_bytes), max_size=4)
timestamps = st.integers(min_value=0, max_value=2**50)
records = st.lists(
    st.tuples(optional_bytes, optional_bytes, headers, timestamps), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    recs=records,
    codec=st.sampled_from(list(Compression)),
    base_offset=st.integers(min_value=0, max_value=2**62),
)
def test_build_iter_round_trip(
    recs: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    codec: Compression,
    base_offset: int,
) -> None:
    batch = build_batch(recs, compression=codec, base_offset=base_offset, now_ms=0)
    header = validate_batch(batch)
    assert header.record_count == len(recs)
    assert header.max_timestamp == max(ts for *_, ts in recs)
    assert list(iter_records(batch)) == [
        Record(base_offset + i, ts, k, v, tuple(h)) for i, (k, v, h, ts) in enumerate(recs)
    ]


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_varint_round_trip(value: int) -> None:
    enc = encode_varint(value)
    assert decode_varint(enc) == (value, len(enc))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    enc = encode_varlong(value)
    assert decode_varlong(enc) == (value, len(enc))


@given(st.binary(max_size=12))
def test_varint_decoders_only_raise_corrupt(data: bytes) -> None:
    for decode in (decode_varint, decode_varlong):
        try:
            _value, pos = decode(data)
        except CorruptRecordError:
            continue
        assert 0 < pos <= len(data)


def _consume(buf: bytes) -> None:
    for pos, _header in iter_batches(buf, max_bytes=1 << 20):
        for _record in iter_records(memoryview(buf)[pos:], max_decompressed_bytes=1 << 20):
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_record_errors(data: bytes) -> None:
    try:
        _consume(data)
    except EXPECTED_ERRORS:
        pass


def _with_fixed_crc(buf: bytearray) -> bytes:
    if len(buf) >= 61:
        struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return bytes(buf)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=records,
    codec=st.sampled_from(list(Compression)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=6,
    ),
    cut=st.none() | st.integers(min_value=0),
)
def test_mutated_batches_with_valid_crc_only_raise_record_errors(
    recs: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    codec: Compression,
    edits: list[tuple[int, int]],
    cut: int | None,
) -> None:
    # The CRC is recomputed after mutating, so the record decoder (not the CRC) must catch it.
    buf = bytearray(build_batch(recs, compression=codec, now_ms=0))
    for index, byte in edits:
        buf[index % len(buf)] = byte
    if cut is not None:
        del buf[cut % len(buf) :]
    try:
        _consume(_with_fixed_crc(buf))
    except EXPECTED_ERRORS:
        pass


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=200),
    count=st.integers(min_value=1, max_value=5),
    codec=st.sampled_from(list(Compression)),
)
def test_arbitrary_payload_in_a_valid_header(
    payload: bytes, count: int, codec: Compression
) -> None:
    after = struct.pack(">hiqqqhii", int(codec), count - 1, 0, 0, -1, -1, -1, count) + payload
    batch = struct.pack(">qiibI", 0, len(after) + 9, -1, 2, crc32c.crc32c(after)) + after
    try:
        _consume(batch)
    except EXPECTED_ERRORS:
        pass
