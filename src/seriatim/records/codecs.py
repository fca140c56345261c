"""Compression codecs for record batch payloads, with bounded decompression.

Theory of operation: the codec id lives in bits 0-2 of a batch's ``attributes``; the payload
after the 61-byte header is one compressed blob holding all records. Every codec goes through
cramjam (gzip inflation uses the standard library's zlib, for its ``max_length`` streaming).

What we write, and what we read (docs/formats.md, notes/kafka-clients.md section 7.1):

* gzip: a gzip stream. We read concatenated members too, as Java's GZIPInputStream does.
* snappy: a **raw** snappy block, as librdkafka writes. The Java client, kafka-python and
  aiokafka write **xerial** framing (magic ``82 53 4E 41 50 50 59 00``, version, compat, then
  ``[int32 length][raw block]`` chunks); every client reads both, and so do we.
* lz4: an LZ4 *frame* (magic ``04 22 4D 18``), never the block API.
* zstd: a zstd frame, with or without a content size.

Decompression bombs (CVE-2023-34455): :func:`decompress` never holds more than ``max_bytes``
(+1) of output, and refuses a payload that would inflate beyond it with CorruptRecordError. The
bound each codec gives is written beside it.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from enum import IntEnum
from typing import TypeAlias

import cramjam

from seriatim import limits
from seriatim.errors import CorruptRecordError, UnsupportedCompressionError

__all__ = ["XERIAL_MAGIC", "Compression", "compress", "decompress"]

Buffer: TypeAlias = bytes | bytearray | memoryview


class Compression(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")  # magic, version, compatible version
_XERIAL_CHUNK_LEN = struct.Struct(">i")
_XERIAL_VERSION = 1

_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Worst-case expansion of one input byte, used to let small payloads take the direct (fastest)
# path: their output cannot exceed max_bytes whatever they hold.
#  * zstd: the densest block is an RLE block, a 3-byte header + 1 byte for up to 128 KiB.
#  * lz4: a match length grows by 255 per extra input byte, so ~255x (plus frame overhead,
#    covered by rounding up to 256).
_ZSTD_MAX_RATIO = 128 * 1024 // 4
_LZ4_MAX_RATIO = 256
_FULL_BUFFER = "failed to write whole buffer"  # cramjam's message when the output is full


def compress(codec: Compression, data: Buffer) -> bytes:
    """Compress a records payload with ``codec`` as seriatim writes it (see module docstring)."""
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == Compression.SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == Compression.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    if codec == Compression.NONE:
        return bytes(data)
    raise UnsupportedCompressionError(f"unknown compression codec {codec!r}")


def decompress(
    codec: Compression,
    data: Buffer,
    *,
    max_bytes: int = limits.MAX_DECOMPRESSED_BATCH_BYTES,
) -> bytes:
    """Inflate a records payload, refusing (CorruptRecordError) output above ``max_bytes``.

    A payload that is not valid for its codec is a CorruptRecordError as well; an unknown codec
    is an UnsupportedCompressionError.
    """
    if codec == Compression.GZIP:
        return _gunzip(data, max_bytes)
    if codec == Compression.SNAPPY:
        return _unsnappy(data, max_bytes)
    if codec == Compression.LZ4:
        return _bounded_cramjam(
            cramjam.lz4,
            "lz4",
            data,
            max_bytes,
            max_ratio=_LZ4_MAX_RATIO,
            declared=_lz4_content_size(data),
        )
    if codec == Compression.ZSTD:
        return _bounded_cramjam(
            cramjam.zstd,
            "zstd",
            data,
            max_bytes,
            max_ratio=_ZSTD_MAX_RATIO,
            declared=_zstd_content_size(data),
        )
    if codec == Compression.NONE:
        if len(data) > max_bytes:
            raise _bomb("none", max_bytes)
        return bytes(data)
    raise UnsupportedCompressionError(f"unknown compression codec {codec!r}")


def _bomb(name: str, max_bytes: int) -> CorruptRecordError:
    return CorruptRecordError(
        f"{name} payload inflates beyond the limit of {max_bytes} bytes (decompression bomb?)"
    )


# --- gzip -------------------------------------------------------------------------------------


def _gunzip(data: Buffer, max_bytes: int) -> bytes:
    # Bound: zlib's max_length makes inflate stop after max_bytes + 1 output bytes, so memory
    # never exceeds the cap whatever the ratio (gzip reaches ~1032x).
    out: list[bytes] = []
    total = 0
    rest: Buffer = data
    try:
        while True:
            d = zlib.decompressobj(wbits=31)  # gzip wrapper only, as Kafka writes it
            chunk = d.decompress(rest, max_bytes - total + 1)
            total += len(chunk)
            if total > max_bytes:
                raise _bomb("gzip", max_bytes)
            out.append(chunk)
            if not d.eof:
                # Output stopped below the cap, so all input was consumed: the stream is cut.
                raise CorruptRecordError("gzip payload is truncated")
            rest = d.unused_data
            if not rest:
                break
    except zlib.error as exc:
        raise CorruptRecordError(f"gzip payload is corrupt: {exc}") from None
    return out[0] if len(out) == 1 else b"".join(out)


# --- snappy -----------------------------------------------------------------------------------


def _unsnappy_raw(block: Buffer, max_bytes: int) -> bytes:
    # Bound: a raw block starts with its uncompressed length (a varint); it is checked before
    # cramjam allocates that many bytes.
    try:
        declared = cramjam.snappy.decompress_raw_len(block)
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise CorruptRecordError(f"snappy block is corrupt: {exc}") from None
    if declared > max_bytes:
        raise _bomb("snappy", max_bytes)
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except Exception as exc:
        raise CorruptRecordError(f"snappy block is corrupt: {exc}") from None


def _unsnappy(data: Buffer, max_bytes: int) -> bytes:
    view = memoryview(data)
    if view[:8] != XERIAL_MAGIC:
        return _unsnappy_raw(view, max_bytes)
    # Xerial framing: header, then [int32 length][raw block]... Each block's declared length is
    # checked against what the cap still allows, so the sum is bounded too.
    if len(view) < _XERIAL_HEADER.size:
        raise CorruptRecordError("xerial snappy header is truncated")
    pos = _XERIAL_HEADER.size
    out: list[bytes] = []
    total = 0
    while pos < len(view):
        if len(view) - pos < 4:
            raise CorruptRecordError(f"xerial snappy chunk length at byte {pos} is truncated")
        (length,) = _XERIAL_CHUNK_LEN.unpack_from(view, pos)
        pos += 4
        if length < 0 or length > len(view) - pos:
            raise CorruptRecordError(
                f"xerial snappy chunk of {length} bytes at byte {pos} exceeds the "
                f"{len(view) - pos} bytes left"
            )
        block = _unsnappy_raw(view[pos : pos + length], max_bytes - total)
        total += len(block)
        out.append(block)
        pos += length
    return b"".join(out)


# --- lz4 / zstd -------------------------------------------------------------------------------


def _lz4_content_size(data: Buffer) -> int | None:
    """The content size an LZ4 frame header declares, or None if absent/not a frame."""
    if len(data) < 15 or bytes(data[:4]) != _LZ4_MAGIC:
        return None
    flg = data[4]
    if not flg & 0x08:  # FLG bit 3: content size present
        return None
    return int.from_bytes(data[6:14], "little")


def _zstd_content_size(data: Buffer) -> int | None:
    """The Frame_Content_Size a zstd frame header declares, or None if absent/not a frame."""
    if len(data) < 6 or bytes(data[:4]) != _ZSTD_MAGIC:
        return None
    fhd = data[4]
    fcs_flag = fhd >> 6
    single_segment = fhd & 0x20
    pos = 5 if single_segment else 6  # Window_Descriptor is absent in single-segment frames
    pos += (0, 1, 2, 4)[fhd & 0x03]  # Dictionary_ID
    size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(data) < pos + size:
        return None
    value = int.from_bytes(data[pos : pos + size], "little")
    return value + 256 if size == 2 else value


def _bounded_cramjam(
    module: object,
    name: str,
    data: Buffer,
    max_bytes: int,
    *,
    max_ratio: int,
    declared: int | None,
) -> bytes:
    """Inflate an lz4 or zstd frame with memory bounded by ``max_bytes``.

    Bounds, in the order tried:
      1. a declared content size above the cap is refused before any work;
      2. a payload too small to reach the cap (len * worst ratio <= cap) is inflated directly;
      3. a declared size within the cap sizes an exact output buffer;
      4. otherwise inflate into an anonymous mmap of cap + 1 bytes: cramjam streams into it and
         fails when it is full, and the kernel commits only the pages actually written.
    """
    decompress_into = module.decompress_into  # type: ignore[attr-defined]
    if declared is not None and declared > max_bytes:
        raise _bomb(name, max_bytes)
    try:
        if len(data) * max_ratio <= max_bytes:
            out = bytes(module.decompress(data))  # type: ignore[attr-defined]
            if len(out) > max_bytes:  # only if the ratio bound above were wrong
                raise _bomb(name, max_bytes)
            return out
        if declared is not None:
            buf = bytearray(declared)
            try:
                n = decompress_into(data, buf)
            except Exception as exc:
                if _FULL_BUFFER not in str(exc):
                    raise
                n = -1  # more than declared (say, several frames): take the general path
            if n >= 0:
                return bytes(buf) if n == declared else bytes(memoryview(buf)[:n])
        with mmap.mmap(-1, max_bytes + 1) as mm:
            try:
                n = decompress_into(data, mm)
            except Exception as exc:
                if _FULL_BUFFER in str(exc):
                    raise _bomb(name, max_bytes) from None
                raise
            if n > max_bytes:
                raise _bomb(name, max_bytes)
            return mm[:n]
    except CorruptRecordError:
        raise
    except Exception as exc:  # cramjam.DecompressionError and friends
        raise CorruptRecordError(f"{name} payload is corrupt: {exc}") from None
