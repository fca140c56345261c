"""Bounds-checked primitive readers and writers shared by the hand-written protocol code.

Readers take ``(buf, pos, end)`` and return ``(value, new_pos)``; they raise
:class:`MalformedRequestError` instead of reading past ``end``. Writers append to a
``bytearray``. Only what the hand-written paths need lives here; everything else is kio's.
"""

from __future__ import annotations

from seriatim.protocol.errors import MalformedRequestError

__all__ = ["read_uvarint", "uvarint_bytes", "write_uvarint"]

# Kafka's unsigned varints are at most 5 bytes (32 bits); kio reads up to 35 bits. We accept
# what Kafka accepts.
_MAX_UVARINT_BYTES = 5


def read_uvarint(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Read an unsigned varint (protobuf style, little-endian 7-bit groups)."""
    value = 0
    shift = 0
    for _ in range(_MAX_UVARINT_BYTES):
        if pos >= end:
            raise MalformedRequestError("truncated unsigned varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise MalformedRequestError("unsigned varint longer than 5 bytes")


def write_uvarint(out: bytearray, value: int) -> None:
    """Append ``value`` (>= 0) as an unsigned varint."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


_SMALL_UVARINTS = tuple(bytes([i]) for i in range(0x80))


def uvarint_bytes(value: int) -> bytes:
    """``value`` as an unsigned varint (cached for the one-byte case)."""
    if value < 0x80:
        return _SMALL_UVARINTS[value]
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)
