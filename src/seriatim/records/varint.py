"""Zigzag varints and varlongs, as Kafka's ``ByteUtils`` writes them.

Theory of operation: a value is zigzag-mapped (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...) and written
little-endian in 7-bit groups, the high bit of each byte saying "more follows". An int32
(``varint``) takes at most 5 bytes, an int64 (``varlong``) at most 10; a longer encoding is
corrupt, as in Java's ``ByteUtils.readVarint`` ("the most significant bit in the 5th byte is
set").

The hot paths in :mod:`seriatim.records.batch` do not call these functions per field: they
inline the 1- and 2-byte cases (almost every length, delta and count in a record) and use the
tables here. The functions are the general, checked path and the reference for tests.
"""

from __future__ import annotations

from seriatim.errors import CorruptRecordError

__all__ = [
    "MAX_VARINT_BYTES",
    "MAX_VARLONG_BYTES",
    "ZIGZAG_1",
    "ZIGZAG_2",
    "decode_varint",
    "decode_varlong",
    "encode_varint",
    "encode_varlong",
    "varint_size",
    "zigzag",
]

MAX_VARINT_BYTES = 5
MAX_VARLONG_BYTES = 10

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# Zigzag-decoded value of a 1-byte varint (byte < 0x80), indexed by the byte.
ZIGZAG_1 = tuple((b >> 1) ^ -(b & 1) for b in range(128))


def _zigzag_2_table() -> tuple[int, ...]:
    table = [0] * (0xFF + (0x7F << 7) + 1)
    for second in range(0x80):
        for first in range(0x80, 0x100):
            raw = (first & 0x7F) | (second << 7)
            table[first + (second << 7)] = (raw >> 1) ^ -(raw & 1)
    return tuple(table)


ZIGZAG_2 = _zigzag_2_table()

# Encodings of every value that fits in two varint bytes (-8192 .. 8191), indexed by
# value + ENCODE_TABLE_BIAS. Records' lengths, deltas and counts almost always fall here, so
# the builder finds a field's bytes with one lookup instead of a loop.
ENCODE_TABLE_BIAS = 8192


def zigzag(value: int) -> int:
    """Map a signed value to the unsigned value Kafka writes (works for any width)."""
    return value << 1 if value >= 0 else ((-value) << 1) - 1


def _encode_unsigned(raw: int) -> bytes:
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


ENCODE_TABLE: tuple[bytes, ...] = tuple(
    _encode_unsigned(zigzag(v)) for v in range(-ENCODE_TABLE_BIAS, ENCODE_TABLE_BIAS)
)


def encode_varint(value: int) -> bytes:
    """Encode an int32 as a zigzag varint; ValueError if it does not fit in 32 bits."""
    if -ENCODE_TABLE_BIAS <= value < ENCODE_TABLE_BIAS:
        return ENCODE_TABLE[value + ENCODE_TABLE_BIAS]
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"varint out of int32 range: {value}")
    return _encode_unsigned(zigzag(value))


def encode_varlong(value: int) -> bytes:
    """Encode an int64 as a zigzag varlong; ValueError if it does not fit in 64 bits."""
    if -ENCODE_TABLE_BIAS <= value < ENCODE_TABLE_BIAS:
        return ENCODE_TABLE[value + ENCODE_TABLE_BIAS]
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"varlong out of int64 range: {value}")
    return _encode_unsigned(zigzag(value))


def varint_size(value: int) -> int:
    """Bytes the zigzag encoding of ``value`` takes."""
    raw = zigzag(value)
    size = 1
    while raw >= 0x80:
        raw >>= 7
        size += 1
    return size


def _decode(
    buf: bytes | bytearray | memoryview, pos: int, end: int, max_len: int
) -> tuple[int, int]:
    raw = 0
    shift = 0
    limit = min(end, pos + max_len)
    i = pos
    while i < limit:
        b = buf[i]
        raw |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            if raw >> (7 * max_len - (3 if max_len == MAX_VARINT_BYTES else 6)):
                # More significant bits than the type holds (35 > 32, 70 > 64).
                raise CorruptRecordError(f"varint at byte {pos} overflows {max_len * 7} bits")
            return (raw >> 1) ^ -(raw & 1), i
        shift += 7
    if i >= end and i - pos < max_len:
        raise CorruptRecordError(f"varint at byte {pos} runs past the end of its buffer ({end})")
    raise CorruptRecordError(f"varint at byte {pos} is longer than {max_len} bytes")


def decode_varint(
    buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None
) -> tuple[int, int]:
    """Decode an int32 zigzag varint at ``pos``; return ``(value, next_pos)``.

    Raises CorruptRecordError if it runs past ``end`` (default: the buffer's end), is longer
    than 5 bytes, or does not fit in 32 bits.
    """
    return _decode(buf, pos, len(buf) if end is None else end, MAX_VARINT_BYTES)


def decode_varlong(
    buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None
) -> tuple[int, int]:
    """Decode an int64 zigzag varlong at ``pos``; return ``(value, next_pos)``."""
    return _decode(buf, pos, len(buf) if end is None else end, MAX_VARLONG_BYTES)
