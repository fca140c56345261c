"""Kafka RecordBatch v2 (magic 2): header, validation, record iteration and the builder.

Theory of operation
-------------------
A batch is a 61-byte header followed by its records (one compressed blob when the codec bits
of ``attributes`` are non-zero). The byte table is in ``docs/formats.md``; the Java reference is
``DefaultRecordBatch`` / ``DefaultRecord``.

* **Gateway.** :func:`validate_batch` is the one check every batch from the network or the disk
  passes: length bounds (>= 61, <= the bytes that remain, <= ``max_bytes``), magic 2, CRC-32C
  over ``attributes`` .. end, a known codec, ``record_count == last_offset_delta + 1 > 0``.
  After it, a :class:`BatchHeader` is trusted.
* **In place.** ``baseOffset`` and ``partitionLeaderEpoch`` lie outside the CRC, so the log
  assigns offsets with :func:`set_base_offset` / :func:`set_partition_leader_epoch` on a
  writable buffer without recomputing anything.
* **Records** are decoded only where someone needs them (:func:`iter_records`). Every declared
  length (record, key, value, header count, header key/value) is checked against the bytes
  that remain in its record *before* it is sliced, so a hostile length never allocates
  (CVE-2022-34917 class); anything malformed is a :class:`CorruptRecordError`.

Performance notes: the encode and decode loops are written for CPython's interpreter, not for
looks. They bind globals to locals, inline the 1- and 2-byte varint cases (nearly every field
of a small record), look encodings up in a table, and join bytes once per batch. Records are
created through the slot descriptors because a frozen dataclass' ``__init__`` costs ~2x more.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

import crc32c as _crc32c_mod

from seriatim import limits
from seriatim.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from seriatim.records.codecs import Compression, compress, decompress
from seriatim.records.varint import (
    ENCODE_TABLE,
    ENCODE_TABLE_BIAS,
    MAX_VARINT_BYTES,
    MAX_VARLONG_BYTES,
    ZIGZAG_1,
    ZIGZAG_2,
    decode_varint,
    encode_varint,
    encode_varlong,
)
from seriatim.records.varint import _decode as _decode_var

__all__ = [
    "BATCH_HEADER_SIZE",
    "BatchHeader",
    "Compression",
    "Header",
    "Record",
    "RecordInput",
    "TimestampType",
    "build_batch",
    "check_record_framing",
    "iter_batches",
    "iter_records",
    "parse_header",
    "set_base_offset",
    "set_partition_leader_epoch",
    "validate_batch",
]

_crc32c = _crc32c_mod.crc32c

BATCH_HEADER_SIZE = limits.RECORD_BATCH_OVERHEAD_BYTES  # 61
MAGIC = 2

# Byte offsets inside the header (DefaultRecordBatch.java).
_BASE_OFFSET_OFFSET = 0
_PLE_OFFSET = 12
_ATTRIBUTES_OFFSET = 21  # the CRC covers this byte to the end
# batchLength counts the bytes after itself: size = batchLength + 12.
_LOG_OVERHEAD = 12

_HEADER = struct.Struct(">qiibIhiqqqhii")  # the whole 61-byte header
_PREFIX = struct.Struct(">qiibI")  # baseOffset .. crc: the part outside the CRC (21 bytes)
_AFTER_CRC = struct.Struct(">hiqqqhii")  # attributes .. recordCount (40 bytes)
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
assert _HEADER.size == BATCH_HEADER_SIZE
assert _PREFIX.size + _AFTER_CRC.size == BATCH_HEADER_SIZE

_ATTR_COMPRESSION_MASK = 0x07
_ATTR_TIMESTAMP_TYPE = 0x08
_ATTR_TRANSACTIONAL = 0x10
_ATTR_CONTROL = 0x20

# The smallest record: length(1) attributes(1) tsDelta(1) offsetDelta(1) keyLen(1) valueLen(1)
# headerCount(1). Used to refuse a record_count the payload cannot possibly hold.
_MIN_RECORD_BYTES = 7
_MIN_RECORD_BODY = _MIN_RECORD_BYTES - 1

Buffer: TypeAlias = bytes | bytearray | memoryview


class TimestampType(IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded 61-byte header of a v2 batch.

    Invariants once :func:`validate_batch` returned it: ``magic == 2``, ``size >= 61``, the CRC
    matched, the codec is known and ``record_count == last_offset_delta + 1 > 0``.
    :func:`parse_header` alone promises none of that.
    """

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies (header included)."""
        return self.batch_length + _LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _ATTR_COMPRESSION_MASK)

    @property
    def timestamp_type(self) -> TimestampType:
        return (
            TimestampType.LOG_APPEND_TIME
            if self.attributes & _ATTR_TIMESTAMP_TYPE
            else TimestampType.CREATE_TIME
        )

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _ATTR_CONTROL)


# --- header -----------------------------------------------------------------------------------


def parse_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Decode the 61-byte header at ``pos`` without checking anything but its presence."""
    if pos < 0 or len(buf) - pos < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch at byte {pos} truncated: {max(0, len(buf) - pos)} bytes, "
            f"a header needs {BATCH_HEADER_SIZE}"
        )
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def validate_batch(buf: Buffer, pos: int = 0, *, max_bytes: int | None = None) -> BatchHeader:
    """Check the batch at ``pos`` and return its header.

    Raises :class:`CorruptRecordError` (too short, truncated, magic != 2, CRC mismatch, unknown
    codec), :class:`RecordTooLargeError` (size > ``max_bytes``) or :class:`InvalidRecordError`
    (``record_count`` != ``last_offset_delta + 1``, or not positive). Bytes after the batch are
    not looked at.
    """
    header = parse_header(buf, pos)
    size = header.batch_length + _LOG_OVERHEAD
    if size < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch at byte {pos}: size {size} is below the minimum {BATCH_HEADER_SIZE}"
        )
    # Too large is checked before truncated so an oversized produce gets MESSAGE_TOO_LARGE
    # whatever the frame holds, as Kafka answers.
    if max_bytes is not None and size > max_bytes:
        raise RecordTooLargeError(
            f"record batch at byte {pos}: {size} bytes exceeds the limit of {max_bytes}"
        )
    remaining = len(buf) - pos
    if size > remaining:
        raise CorruptRecordError(
            f"record batch at byte {pos} truncated: declares {size} bytes, {remaining} remain"
        )
    if header.magic != MAGIC:
        raise CorruptRecordError(
            f"record batch at byte {pos}: magic {header.magic}, only magic {MAGIC} is supported"
        )
    actual = _crc32c(memoryview(buf)[pos + _ATTRIBUTES_OFFSET : pos + size])
    if actual != header.crc:
        raise CorruptRecordError(
            f"record batch at byte {pos}: CRC-32C mismatch "
            f"(stored {header.crc:#010x}, computed {actual:#010x})"
        )
    if header.attributes & _ATTR_COMPRESSION_MASK > Compression.ZSTD:
        raise CorruptRecordError(
            f"record batch at byte {pos}: unknown compression codec id "
            f"{header.attributes & _ATTR_COMPRESSION_MASK}"
        )
    if header.record_count <= 0 or header.record_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            f"record batch at byte {pos}: record count {header.record_count} does not match "
            f"last offset delta {header.last_offset_delta} + 1"
        )
    return header


def iter_batches(
    buf: Buffer, pos: int = 0, *, max_bytes: int | None = None
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each batch from ``pos`` to the end, each validated.

    Stops cleanly only at the exact end of ``buf``; a partial or corrupt batch raises (the
    message names its byte position), so a caller scanning a log can cut a torn tail there.
    """
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos, max_bytes=max_bytes)
        yield pos, header
        pos += header.batch_length + _LOG_OVERHEAD


_PROBE_MIN_RUN = 4  # a probe that finds a shorter run switches to the scalar walk for a while
_SCALAR_STRETCH = 32  # records walked one by one before probing for a run again
_PROBE_COPY_MAX = 64 * 1024  # bytes copied per probe when the batch is not ``bytes``


def check_record_framing(
    buf: Buffer, count: int, start: int = BATCH_HEADER_SIZE, end: int | None = None
) -> None:
    """Check that exactly ``count`` length-prefixed records fill ``buf[start:end]``.

    The uncompressed-batch check Kafka's record iterator implies (no record missing, none left
    over, no length running past the end), without decoding any record. Raises
    :class:`InvalidRecordError` (or :class:`CorruptRecordError` for a malformed varint).

    Walking one varint per record in Python costs ~300 ns a record, a third of a core at
    1 M records/s. Producers write runs of records of the same length (a fixed-size value,
    and the offset/timestamp deltas change their varint width rarely), so this probes for a
    *run*: with the first record's length prefix ``p`` (v bytes) and stride ``s = v + len``,
    the next ``k`` records start at ``pos + i*s``; the strided slice ``buf[pos:pos+k*s:s]``
    (one C loop) lists their first bytes and ``lstrip`` counts how many equal ``p[0]`` (and
    likewise for each of the ``v`` prefix bytes). Records whose prefix bytes equal the first
    one's decode to the same length, so a run of ``r`` matching records is exactly what the
    sequential walk would have accepted. The probe window grows while runs fill it; when runs
    are short (variable-size records) the walk goes record by record for a stretch.

    A ``bytearray``/``memoryview`` (the broker's copy-free Produce path hands a view of the
    request frame) is not copied whole: strided slices of a memoryview are slow to compare, so
    each probe copies just its window (<= ``_PROBE_COPY_MAX`` bytes, cache-resident) to
    ``bytes``. Copying the whole 1 MB batch instead cost a fresh allocation per request, whose
    page faults were about half the broker's kernel time per GiB produced (measured).
    """
    whole = type(buf) is bytes
    data: bytes | memoryview = buf if whole else memoryview(buf).cast("B")  # type: ignore[assignment]
    if end is None:
        end = len(data)
    pos = start
    left = count
    window = 64
    scalar = 0
    zz1 = ZIGZAG_1
    zz2 = ZIGZAG_2
    while left > 0:
        if pos >= end:
            raise InvalidRecordError("the batch holds fewer records than its header declares")
        b0 = data[pos]
        if b0 < 0x80:
            length = zz1[b0]
            v = 1
        elif pos + 1 < end and data[pos + 1] < 0x80:
            length = zz2[b0 + (data[pos + 1] << 7)]
            v = 2
        else:
            length, nxt = _decode_var(data, pos, end, MAX_VARINT_BYTES)
            v = nxt - pos
        if length <= 0 or length > end - pos - v:
            raise InvalidRecordError("record length runs past the end of the batch")
        stride = v + length
        if scalar > 0:
            scalar -= 1
            pos += stride
            left -= 1
            continue
        k = min(left, window, (end - pos) // stride)
        if not whole:
            k = min(k, max(2, _PROBE_COPY_MAX // stride))
        run = k
        if k > 1:
            if whole:
                src, base = data, pos
            else:
                src, base = bytes(data[pos : pos + k * stride]), 0
            stop = base + k * stride
            for j in range(v):
                col = src[base + j : stop : stride]
                run = min(run, k - len(col.lstrip(col[:1])))  # type: ignore[union-attr]
        pos += run * stride
        left -= run
        if run == k:
            window = min(window * 4, 1 << 20)
        elif run < _PROBE_MIN_RUN:
            window = 64
            scalar = _SCALAR_STRETCH
    if pos != end:
        raise InvalidRecordError("record count does not match the batch header")


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Rewrite ``baseOffset`` in place; outside the CRC, so the batch stays valid."""
    _INT64.pack_into(buf, pos + _BASE_OFFSET_OFFSET, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Rewrite ``partitionLeaderEpoch`` in place; outside the CRC as well."""
    _INT32.pack_into(buf, pos + _PLE_OFFSET, epoch)


# --- records ----------------------------------------------------------------------------------

Header: TypeAlias = tuple[str, bytes | None]
RecordInput: TypeAlias = (
    tuple[bytes | None, bytes | None]
    | tuple[bytes | None, bytes | None, Sequence[Header]]
    | tuple[bytes | None, bytes | None, Sequence[Header], int | None]
)


@dataclass(frozen=True, slots=True)
class Record:
    """One record, as a consumer sees it: absolute offset and timestamp, bytes untouched."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


# Creating a Record through its slot descriptors skips the frozen __setattr__ check that the
# generated __init__ pays per field (~2x the cost); the decode loop creates millions of these.
_new_record = Record.__new__
_slots = vars(Record)
_set_offset: Callable[[Record, int], None] = _slots["offset"].__set__
_set_timestamp: Callable[[Record, int], None] = _slots["timestamp_ms"].__set__
_set_key: Callable[[Record, bytes | None], None] = _slots["key"].__set__
_set_value: Callable[[Record, bytes | None], None] = _slots["value"].__set__
_set_headers: Callable[[Record, tuple[Header, ...]], None] = _slots["headers"].__set__
del _slots


def iter_records(
    batch: Buffer,
    *,
    max_decompressed_bytes: int = limits.MAX_DECOMPRESSED_BATCH_BYTES,
    validated: BatchHeader | None = None,
) -> Iterator[Record]:
    """Validate the batch that starts at ``batch[0]`` and return an iterator over its records.

    ``validated``: the header :func:`validate_batch` already returned for exactly these bytes;
    it is trusted and the header/CRC check is not repeated (the Produce handler validates each
    batch once, then walks a compressed one).

    The header, CRC and codec are checked now (bytes after the batch are ignored, so a view of a
    larger buffer is fine); records are decoded lazily and a malformed one raises
    :class:`CorruptRecordError` from ``next()``. A compressed payload is inflated up to
    ``max_decompressed_bytes`` (beyond that: CorruptRecordError). For a LogAppendTime batch
    every record carries the batch's ``max_timestamp``, as Kafka's reader does.
    """
    header = validate_batch(batch) if validated is None else validated
    end = header.batch_length + _LOG_OVERHEAD
    codec = header.attributes & _ATTR_COMPRESSION_MASK
    if codec:
        payload = decompress(
            Compression(codec),
            memoryview(batch)[BATCH_HEADER_SIZE:end],
            max_bytes=max_decompressed_bytes,
        )
        data, start, end = payload, 0, len(payload)
    elif type(batch) is bytes:
        # Decode in place: slicing bytes yields bytes, which is what Record holds.
        data, start = batch, BATCH_HEADER_SIZE
    else:
        # One copy of the records so that every key/value slice is a bytes object.
        data = bytes(memoryview(batch)[BATCH_HEADER_SIZE:end])
        start, end = 0, end - BATCH_HEADER_SIZE
    count = header.record_count
    if count * _MIN_RECORD_BYTES > end - start:
        raise CorruptRecordError(
            f"record batch declares {count} records but holds only {end - start} bytes of them"
        )
    append_time = header.max_timestamp if header.attributes & _ATTR_TIMESTAMP_TYPE else None
    return _decode_records(
        data,
        start,
        end,
        count=count,
        base_offset=header.base_offset,
        first_timestamp=header.first_timestamp,
        append_time=append_time,
    )


def _corrupt(offset_delta_index: int, what: str) -> CorruptRecordError:
    return CorruptRecordError(f"record {offset_delta_index} of batch: {what}")


def _decode_records(
    data: bytes,
    pos: int,
    end: int,
    *,
    count: int,
    base_offset: int,
    first_timestamp: int,
    append_time: int | None,
) -> Iterator[Record]:
    # Locals for speed: every global lookup in this loop costs measurable throughput.
    zz = ZIGZAG_1
    zz2 = ZIGZAG_2
    read_var = _decode_var
    new = _new_record
    cls = Record
    set_offset, set_ts, set_key, set_value, set_headers = (
        _set_offset,
        _set_timestamp,
        _set_key,
        _set_value,
        _set_headers,
    )
    vi, vl = MAX_VARINT_BYTES, MAX_VARLONG_BYTES
    i = 0
    try:
        for i in range(count):  # i is also read by the error path
            # length varint: 2 bytes for any record of 64..8191 bytes, so inline both cases.
            b = data[pos]
            if b < 0x80:
                length = zz[b]
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    length = zz2[b + (b2 << 7)]
                    pos += 2
                else:
                    length, pos = read_var(data, pos, end, vi)
            rec_end = pos + length
            if length < _MIN_RECORD_BODY or rec_end > end:
                raise _corrupt(
                    i,
                    f"record length {length} below the minimum of {_MIN_RECORD_BODY}"
                    if length < _MIN_RECORD_BODY
                    else f"record length {length} exceeds the {end - pos} bytes remaining",
                )
            pos += 1  # record attributes: unused by every Kafka version so far
            # timestamp and offset deltas: 1 byte below 64, 2 bytes below 8192 (most records of
            # a 1000-record batch), so inline both; a 2-byte read past rec_end is caught by the
            # "fields take ... bytes" check below.
            b = data[pos]
            if b < 0x80:
                ts_delta = zz[b]
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    ts_delta = zz2[b + (b2 << 7)]
                    pos += 2
                else:
                    ts_delta, pos = read_var(data, pos, rec_end, vl)
            b = data[pos]
            if b < 0x80:
                offset_delta = zz[b]
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    offset_delta = zz2[b + (b2 << 7)]
                    pos += 2
                else:
                    offset_delta, pos = read_var(data, pos, rec_end, vi)
            # key: usually null (1 byte) or short
            b = data[pos]
            if b < 0x80:
                klen = zz[b]
                pos += 1
            else:
                klen, pos = read_var(data, pos, rec_end, vi)
            if klen >= 0:
                if pos + klen > rec_end:
                    raise _corrupt(i, f"key length {klen} exceeds the {rec_end - pos} bytes left")
                key: bytes | None = data[pos : pos + klen]
                pos += klen
            elif klen == -1:
                key = None
            else:
                raise _corrupt(i, f"invalid key length {klen}")
            # value: 2 bytes of length for 64..8191-byte values, so inline both cases.
            b = data[pos]
            if b < 0x80:
                vlen = zz[b]
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    vlen = zz2[b + (b2 << 7)]
                    pos += 2
                else:
                    vlen, pos = read_var(data, pos, rec_end, vi)
            if vlen >= 0:
                if pos + vlen > rec_end:
                    raise _corrupt(i, f"value length {vlen} exceeds the {rec_end - pos} bytes left")
                value: bytes | None = data[pos : pos + vlen]
                pos += vlen
            elif vlen == -1:
                value = None
            else:
                raise _corrupt(i, f"invalid value length {vlen}")
            if data[pos] == 0:
                headers: tuple[tuple[str, bytes | None], ...] = ()
                pos += 1
            else:
                headers, pos = _decode_headers(data, pos, rec_end, i)
            if pos != rec_end:
                raise _corrupt(
                    i, f"fields take {length + pos - rec_end} bytes, the record declares {length}"
                )
            rec = new(cls)
            set_offset(rec, base_offset + offset_delta)
            set_ts(rec, first_timestamp + ts_delta if append_time is None else append_time)
            set_key(rec, key)
            set_value(rec, value)
            set_headers(rec, headers)
            yield rec
    except IndexError:
        # A 1- or 2-byte fast path read past the end of the data: the last record is cut.
        raise _corrupt(i, "truncated: a field runs past the end of the batch") from None
    if pos != end:
        raise CorruptRecordError(
            f"record batch holds {end - pos} bytes after its {count} declared records"
        )


def _decode_headers(
    data: bytes, pos: int, rec_end: int, index: int
) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    count, pos = decode_varint(data, pos, rec_end)
    # Each header takes at least 2 bytes (two 1-byte lengths): refuse a count the record cannot
    # hold before building anything for it.
    if count < 0 or count > limits.MAX_RECORD_HEADERS or count * 2 > rec_end - pos:
        raise _corrupt(index, f"invalid header count {count} ({rec_end - pos} bytes left)")
    out: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        klen, pos = decode_varint(data, pos, rec_end)
        if klen < 0 or pos + klen > rec_end:
            raise _corrupt(index, f"header key length {klen} invalid ({rec_end - pos} left)")
        try:
            hkey = data[pos : pos + klen].decode("utf-8")
        except UnicodeDecodeError:
            raise _corrupt(index, "header key is not valid UTF-8") from None
        pos += klen
        vlen, pos = decode_varint(data, pos, rec_end)
        if vlen >= 0:
            if pos + vlen > rec_end:
                raise _corrupt(index, f"header value length {vlen} exceeds {rec_end - pos} left")
            hval: bytes | None = data[pos : pos + vlen]
            pos += vlen
        elif vlen == -1:
            hval = None
        else:
            raise _corrupt(index, f"invalid header value length {vlen}")
        out.append((hkey, hval))
    return tuple(out), pos


# --- builder ----------------------------------------------------------------------------------


def _encode_headers(headers: Sequence[Header]) -> bytes:
    parts = [encode_varint(len(headers))]
    for hkey, hval in headers:
        kb = hkey.encode("utf-8")
        parts.append(encode_varint(len(kb)))
        parts.append(kb)
        if hval is None:
            parts.append(b"\x01")
        else:
            parts.append(encode_varint(len(hval)))
            parts.append(hval)
    return b"".join(parts)


def build_batch(
    records: Iterable[RecordInput],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    timestamp_ms: int | None = None,
    now_ms: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """Encode records as one v2 batch (CRC included) and return its bytes.

    Each input is ``(key, value)``, ``(key, value, headers)`` or ``(key, value, headers,
    timestamp_ms)``; headers are ``(str, bytes | None)`` pairs. A record without a timestamp
    (or with ``None``) gets ``timestamp_ms``, which defaults to ``now_ms``, which defaults to the
    wall clock. For LOG_APPEND_TIME the batch's max timestamp is that same default (the append
    time), as a broker stamps it. Offsets deltas are 0..n-1. ValueError for an empty input or
    a field out of its wire range.
    """
    if timestamp_ms is None:
        timestamp_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    table = ENCODE_TABLE
    bias = ENCODE_TABLE_BIAS
    parts: list[bytes] = []
    extend = parts.extend
    first_ts = max_ts = timestamp_ms
    index = -1
    for index, rec in enumerate(records):
        n = len(rec)
        if n == 2:
            key, value = rec  # type: ignore[misc]
            headers: Sequence[Header] = ()
            ts = timestamp_ms
        elif n == 3:
            key, value, headers = rec  # type: ignore[misc]
            ts = timestamp_ms
        elif n == 4:
            key, value, headers, rts = rec  # type: ignore[misc]
            ts = timestamp_ms if rts is None else rts
        else:
            raise ValueError(f"record {index}: expected 2 to 4 fields, got {n}")
        if index == 0:
            first_ts = max_ts = ts
        elif ts > max_ts:
            max_ts = ts
        ts_bytes = b"\x00" if ts == first_ts else encode_varlong(ts - first_ts)
        offset_bytes = table[index + bias] if index < bias else encode_varint(index)
        if key is None:
            key_len_bytes = b"\x01"
            key = b""
        else:
            klen = len(key)
            key_len_bytes = table[klen + bias] if klen < bias else encode_varint(klen)
        if value is None:
            value_len_bytes = b"\x01"
            value = b""
        else:
            vlen = len(value)
            value_len_bytes = table[vlen + bias] if vlen < bias else encode_varint(vlen)
        header_bytes = _encode_headers(headers) if headers else b"\x00"
        body_len = (
            1
            + len(ts_bytes)
            + len(offset_bytes)
            + len(key_len_bytes)
            + len(key)
            + len(value_len_bytes)
            + len(value)
            + len(header_bytes)
        )
        extend(
            (
                table[body_len + bias] if body_len < bias else encode_varint(body_len),
                b"\x00",  # record attributes
                ts_bytes,
                offset_bytes,
                key_len_bytes,
                key,
                value_len_bytes,
                value,
                header_bytes,
            )
        )
    count = index + 1
    if count == 0:
        raise ValueError("a record batch needs at least one record")
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        max_ts = timestamp_ms
    attributes = (
        int(compression)
        | (_ATTR_TIMESTAMP_TYPE if timestamp_type == TimestampType.LOG_APPEND_TIME else 0)
        | (_ATTR_TRANSACTIONAL if transactional else 0)
        | (_ATTR_CONTROL if control else 0)
    )
    payload = b"".join(parts)
    if compression != Compression.NONE:
        payload = compress(compression, payload)
    try:
        after_crc = _AFTER_CRC.pack(
            attributes,
            count - 1,
            first_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
        crc = _crc32c(payload, _crc32c(after_crc))
        prefix = _PREFIX.pack(
            base_offset,
            len(payload) + BATCH_HEADER_SIZE - _LOG_OVERHEAD,
            partition_leader_epoch,
            MAGIC,
            crc,
        )
    except struct.error as exc:
        raise ValueError(f"record batch field out of range: {exc}") from None
    return b"".join((prefix, after_crc, payload))
