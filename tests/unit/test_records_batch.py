"""RecordBatch v2: header parsing, validation failures, record decoding, the builder."""

from __future__ import annotations

import struct
import time

import crc32c
import pytest

from seriatim.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from seriatim.records import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    Compression,
    Record,
    RecordInput,
    TimestampType,
    build_batch,
    iter_batches,
    iter_records,
    parse_header,
    set_base_offset,
    set_partition_leader_epoch,
    validate_batch,
)
from seriatim.records.varint import encode_varint, encode_varlong

NOW_MS = 1_700_000_000_000


def raw_batch(
    payload: bytes,
    count: int,
    *,
    last_offset_delta: int | None = None,
    attributes: int = 0,
    magic: int = 2,
    first_ts: int = NOW_MS,
    max_ts: int = NOW_MS,
) -> bytes:
    """A batch with a correct CRC around an arbitrary records payload."""
    lod = count - 1 if last_offset_delta is None else last_offset_delta
    after = struct.pack(">hiqqqhii", attributes, lod, first_ts, max_ts, -1, -1, -1, count)
    after += payload
    crc = crc32c.crc32c(after)
    return struct.pack(">qiibI", 0, len(after) + 9, -1, magic, crc) + after


def raw_record(
    *,
    ts_delta: int = 0,
    offset_delta: int = 0,
    key: bytes | None = None,
    value: bytes | None = b"v",
    headers: bytes = b"\x00",
    length_adjust: int = 0,
) -> bytes:
    body = b"\x00" + encode_varlong(ts_delta) + encode_varint(offset_delta)
    body += b"\x01" if key is None else encode_varint(len(key)) + key
    body += b"\x01" if value is None else encode_varint(len(value)) + value
    body += headers
    return encode_varint(len(body) + length_adjust) + body


def fix_crc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return buf


# --- header -----------------------------------------------------------------------------------


def test_header_fields_and_properties() -> None:
    batch = build_batch(
        [(b"k", b"v"), (b"k2", b"v2", (), NOW_MS + 5)],
        base_offset=100,
        timestamp_ms=NOW_MS,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        partition_leader_epoch=4,
    )
    h = validate_batch(batch)
    assert h == parse_header(batch)
    assert isinstance(h, BatchHeader)
    assert (h.base_offset, h.magic, h.record_count, h.last_offset_delta) == (100, 2, 2, 1)
    assert (h.first_timestamp, h.max_timestamp) == (NOW_MS, NOW_MS + 5)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (7, 3, 11)
    assert h.partition_leader_epoch == 4
    assert h.size == len(batch) == h.batch_length + 12
    assert (h.last_offset, h.next_offset) == (101, 102)
    assert h.compression is Compression.NONE
    assert h.timestamp_type is TimestampType.CREATE_TIME
    assert not h.is_transactional
    assert not h.is_control


def test_attribute_bits() -> None:
    batch = build_batch(
        [(b"k", b"v")],
        compression=Compression.ZSTD,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
        transactional=True,
        control=True,
        now_ms=NOW_MS,
    )
    h = validate_batch(batch)
    assert h.attributes == 4 | 8 | 16 | 32
    assert h.compression is Compression.ZSTD
    assert h.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert h.is_transactional
    assert h.is_control


def test_parse_header_needs_61_bytes() -> None:
    batch = build_batch([(None, b"v")], now_ms=NOW_MS)
    with pytest.raises(CorruptRecordError, match="truncated"):
        parse_header(batch[:60])
    with pytest.raises(CorruptRecordError):
        parse_header(batch, len(batch) - 10)


# --- validation failures ----------------------------------------------------------------------


def test_validate_rejects_bad_crc() -> None:
    batch = bytearray(build_batch([(b"k", b"value")], now_ms=NOW_MS))
    batch[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batch(batch)


def test_crc_covers_attributes_but_not_base_offset_or_epoch() -> None:
    batch = bytearray(build_batch([(b"k", b"value")], now_ms=NOW_MS))
    set_base_offset(batch, 0, 123456789)
    set_partition_leader_epoch(batch, 0, 9)
    h = validate_batch(batch)
    assert (h.base_offset, h.partition_leader_epoch) == (123456789, 9)
    batch[22] ^= 0x08  # flip the timestamp-type bit inside the CRC
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batch(batch)


def test_validate_rejects_bad_magic() -> None:
    batch = bytearray(build_batch([(b"k", b"v")], now_ms=NOW_MS))
    batch[16] = 1  # magic is outside the CRC, so only the magic check can catch it
    with pytest.raises(CorruptRecordError, match="magic 1"):
        validate_batch(batch)


def test_validate_rejects_short_buffer_and_small_size() -> None:
    batch = build_batch([(b"k", b"v")], now_ms=NOW_MS)
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batch(batch[:40])
    small = bytearray(batch)
    struct.pack_into(">i", small, 8, 48)  # size 60 < 61
    with pytest.raises(CorruptRecordError, match="below the minimum"):
        validate_batch(small)
    negative = bytearray(batch)
    struct.pack_into(">i", negative, 8, -5)
    with pytest.raises(CorruptRecordError, match="below the minimum"):
        validate_batch(negative)


def test_validate_rejects_truncated_batch() -> None:
    batch = build_batch([(b"k", b"v" * 100)], now_ms=NOW_MS)
    with pytest.raises(CorruptRecordError, match="truncated: declares"):
        validate_batch(batch[:-1])


def test_validate_rejects_too_large_before_truncation() -> None:
    batch = build_batch([(b"k", b"v" * 100)], now_ms=NOW_MS)
    with pytest.raises(RecordTooLargeError):
        validate_batch(batch, max_bytes=len(batch) - 1)
    assert validate_batch(batch, max_bytes=len(batch)).size == len(batch)
    huge = bytearray(batch)
    struct.pack_into(">i", huge, 8, 2**31 - 1)
    with pytest.raises(RecordTooLargeError):
        validate_batch(huge, max_bytes=1_048_588)


def test_validate_rejects_count_mismatch() -> None:
    records = raw_record(offset_delta=0) + raw_record(offset_delta=1)
    with pytest.raises(InvalidRecordError, match="record count 2"):
        validate_batch(raw_batch(records, 2, last_offset_delta=2))
    with pytest.raises(InvalidRecordError):
        validate_batch(raw_batch(b"", 0, last_offset_delta=-1))


def test_validate_rejects_unknown_codec() -> None:
    with pytest.raises(CorruptRecordError, match="codec id 5"):
        validate_batch(raw_batch(raw_record(), 1, attributes=5))


def test_validate_at_position() -> None:
    a = build_batch([(b"a", b"1")], now_ms=NOW_MS)
    b = build_batch([(b"b", b"2"), (b"c", b"3")], base_offset=1, now_ms=NOW_MS)
    buf = a + b
    assert validate_batch(buf, len(a)).base_offset == 1
    assert [(pos, h.base_offset) for pos, h in iter_batches(buf)] == [(0, 0), (len(a), 1)]


def test_iter_batches_raises_at_torn_tail() -> None:
    a = build_batch([(b"a", b"1")], now_ms=NOW_MS)
    buf = a + a[:30]
    it = iter_batches(buf)
    assert next(it)[0] == 0
    with pytest.raises(CorruptRecordError, match=f"at byte {len(a)}"):
        next(it)
    assert list(iter_batches(b"")) == []


def test_set_base_offset_on_memoryview() -> None:
    buf = bytearray(b"\x00" * 7 + build_batch([(b"k", b"v")], now_ms=NOW_MS))
    set_base_offset(memoryview(buf), 7, 2**40)
    assert validate_batch(buf, 7).base_offset == 2**40
    assert next(iter_records(memoryview(buf)[7:])).offset == 2**40


# --- record decoding failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "count", "message"),
    [
        (raw_record()[:-1], 1, "runs past|exceeds|declares|truncated|holds only"),
        (raw_record(length_adjust=5), 1, "length"),
        (raw_record(length_adjust=-1), 1, "declares"),
        (raw_record(key=b"abc")[:-3], 1, "exceeds|length|truncated"),
        (raw_record() + b"\x00", 1, "after its 1 declared records"),
        (raw_record(), 2, "holds only|truncated|length"),
    ],
    ids=["cut", "length-too-long", "length-too-short", "key-cut", "trailing", "count"],
)
def test_malformed_records_are_corrupt(payload: bytes, count: int, message: str) -> None:
    batch = raw_batch(payload, count)
    with pytest.raises(CorruptRecordError, match=message):
        list(iter_records(batch))


def _record_with_body(body: bytes) -> bytes:
    return encode_varint(len(body)) + body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # attributes, ts, offset, key len 1000 (only 4 bytes follow)
        (b"\x00\x00\x00" + encode_varint(1000) + b"\x01\x00", "key length 1000"),
        (b"\x00\x00\x00\x01" + encode_varint(2**30) + b"\x00", "value length"),
        (b"\x00\x00\x00\x01\x01" + encode_varint(2**30), "header count"),
        (b"\x00\x00\x00\x01\x01" + encode_varint(-3), "header count"),
        (b"\x00\x00\x00\x01\x01\x02" + encode_varint(500) + b"k\x01", "header key length"),
        (b"\x00\x00\x00\x01\x01\x02\x02k" + encode_varint(500), "header value length"),
        (b"\x00\x00\x00\x01\x01\x02\x02\xff\x01", "UTF-8"),
        (b"\x00\x00\x00" + encode_varint(-2) + b"\x01\x00", "invalid key length -2"),
        (b"\x00\x00\x00\x01" + encode_varint(-7) + b"\x00", "invalid value length -7"),
        (b"\x00\x00\x00\x01\x01\x02\x02k" + encode_varint(-4), "invalid header value"),
        # offset delta varint with 6 continuation bytes: longer than an int32's 5
        (b"\x00\x00" + b"\xff" * 6 + b"\x01\x01\x01\x00", "longer than 5 bytes"),
        # 5-byte varint with bits beyond 32
        (b"\x00\x00" + b"\xff\xff\xff\xff\x7f" + b"\x01\x01\x00", "overflows"),
        # timestamp varlong longer than 10 bytes
        (b"\x00" + b"\x80" * 11 + b"\x00\x00\x01\x01\x00", "longer than 10 bytes"),
    ],
)
def test_declared_lengths_are_checked_before_use(body: bytes, message: str) -> None:
    batch = raw_batch(_record_with_body(body), 1)
    with pytest.raises(CorruptRecordError, match=message):
        list(iter_records(batch))


def test_record_length_varint_overflow() -> None:
    batch = raw_batch(b"\xff\xff\xff\xff\xff\xff\x00" + b"\x00" * 10, 1)
    with pytest.raises(CorruptRecordError, match="longer than 5"):
        list(iter_records(batch))


def test_huge_record_count_refused_before_decoding() -> None:
    batch = raw_batch(raw_record(), 2**31 - 1)
    with pytest.raises(CorruptRecordError, match="holds only"):
        iter_records(batch)


def test_records_before_a_corrupt_one_are_yielded() -> None:
    payload = raw_record(value=b"good") + raw_record(offset_delta=1, value=b"x")[:-2]
    it = iter_records(raw_batch(payload, 2))
    assert next(it).value == b"good"
    with pytest.raises(CorruptRecordError):
        next(it)


# --- round trips ------------------------------------------------------------------------------

RECORDS: list[RecordInput] = [
    (b"key", b"value"),
    (None, b"null key"),
    (b"null value", None),
    (None, None),
    (b"", b""),
    (b"h", b"v", [("a", b"1"), ("b", None), ("\u00e9t\u00e9", b"")]),
    (b"ts", b"v", (), NOW_MS - 1000),
    (b"ts2", b"v", [("x", b"y")], NOW_MS + 99_999),
    (b"k" * 200, b"v" * 10_000),  # multi-byte lengths
]


def expected(base_offset: int = 0) -> list[Record]:
    out = []
    for i, rec in enumerate(RECORDS):
        headers: tuple[tuple[str, bytes | None], ...] = ()
        ts: int | None = NOW_MS
        if len(rec) == 3:
            headers = tuple(rec[2])
        elif len(rec) == 4:
            headers, ts = tuple(rec[2]), rec[3]
        assert ts is not None
        out.append(Record(base_offset + i, ts, rec[0], rec[1], headers))
    return out


@pytest.mark.parametrize("codec", list(Compression))
def test_round_trip_every_codec(codec: Compression) -> None:
    batch = build_batch(RECORDS, compression=codec, now_ms=NOW_MS, base_offset=5)
    h = validate_batch(batch)
    assert h.compression is codec
    assert h.record_count == len(RECORDS)
    assert (h.first_timestamp, h.max_timestamp) == (NOW_MS, NOW_MS + 99_999)
    assert list(iter_records(batch)) == expected(5)
    assert list(iter_records(bytearray(batch))) == expected(5)
    assert list(iter_records(memoryview(batch))) == expected(5)
    for rec in iter_records(memoryview(batch)):
        assert rec.key is None or type(rec.key) is bytes
        assert rec.value is None or type(rec.value) is bytes


def test_first_timestamp_is_the_first_records() -> None:
    batch = build_batch([(b"a", b"1", (), 50), (b"b", b"2", (), 10), (b"c", b"3")], now_ms=30)
    h = validate_batch(batch)
    assert (h.first_timestamp, h.max_timestamp) == (50, 50)
    assert [r.timestamp_ms for r in iter_records(batch)] == [50, 10, 30]


def test_timestamp_ms_overrides_now() -> None:
    batch = build_batch([(b"a", b"1")], timestamp_ms=77, now_ms=NOW_MS)
    assert next(iter_records(batch)).timestamp_ms == 77


def test_default_timestamp_is_wall_clock() -> None:
    before = time.time_ns() // 1_000_000
    batch = build_batch([(b"a", b"1")])
    after = time.time_ns() // 1_000_000
    assert before <= next(iter_records(batch)).timestamp_ms <= after


def test_log_append_time_batch_reports_max_timestamp_for_every_record() -> None:
    batch = build_batch(
        [(b"a", b"1", (), 5), (b"b", b"2", (), 6)],
        timestamp_type=TimestampType.LOG_APPEND_TIME,
        now_ms=NOW_MS,
    )
    assert validate_batch(batch).max_timestamp == NOW_MS
    assert [r.timestamp_ms for r in iter_records(batch)] == [NOW_MS, NOW_MS]


def test_many_records_use_multi_byte_offset_deltas() -> None:
    n = 20_000
    batch = build_batch(((None, b"%d" % i) for i in range(n)), base_offset=10, now_ms=NOW_MS)
    records = list(iter_records(batch))
    assert len(records) == n
    assert records[-1].offset == 10 + n - 1
    assert records[-1].value == b"%d" % (n - 1)


def test_large_timestamp_delta_and_negative_delta() -> None:
    batch = build_batch([(b"a", b"1", (), 2**40), (b"b", b"2", (), 0)], now_ms=NOW_MS)
    assert [r.timestamp_ms for r in iter_records(batch)] == [2**40, 0]


def test_build_rejects_empty_and_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_batch([], now_ms=NOW_MS)
    with pytest.raises(ValueError, match="2 to 4 fields"):
        build_batch([(b"a",)], now_ms=NOW_MS)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="out of range"):
        build_batch([(b"a", b"b")], now_ms=NOW_MS, producer_epoch=2**20)


def test_byte_layout_matches_the_kafka_table() -> None:
    batch = build_batch([(b"k", b"v")], base_offset=3, now_ms=NOW_MS, partition_leader_epoch=2)
    assert struct.unpack_from(">q", batch, 0)[0] == 3
    assert struct.unpack_from(">i", batch, 8)[0] == len(batch) - 12
    assert struct.unpack_from(">i", batch, 12)[0] == 2
    assert batch[16] == 2
    assert struct.unpack_from(">I", batch, 17)[0] == crc32c.crc32c(batch[21:])
    assert struct.unpack_from(">i", batch, 57)[0] == 1
    # record: length 7... attributes 0, ts delta 0, offset delta 0, key len 1, k, value len 1,
    # v, header count 0
    assert batch[BATCH_HEADER_SIZE:] == bytes([16, 0, 0, 0, 2]) + b"k" + bytes([2]) + b"v\x00"
