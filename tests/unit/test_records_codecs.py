"""Compression codecs: what we write, what we read (raw and xerial snappy), bomb refusal."""

from __future__ import annotations

import gzip
import struct

import cramjam
import crc32c
import lz4.frame
import pytest

from seriatim.errors import CorruptRecordError, UnsupportedCompressionError
from seriatim.records import (
    XERIAL_MAGIC,
    Compression,
    build_batch,
    compress,
    decompress,
    iter_records,
    validate_batch,
)

CODECS = [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
DATA = b"".join(b"record %06d with some repetitive payload; " % i for i in range(3000))
CAP = 1 << 20  # a small cap keeps bomb tests fast


def xerial(data: bytes, chunk: int = 32 * 1024) -> bytes:
    """Xerial snappy framing as the Java client, kafka-python and aiokafka write it."""
    out = [XERIAL_MAGIC, struct.pack(">ii", 1, 1)]
    for i in range(0, len(data), chunk):
        block = bytes(cramjam.snappy.compress_raw(data[i : i + chunk]))
        out += [struct.pack(">i", len(block)), block]
    return b"".join(out)


@pytest.mark.parametrize("codec", CODECS)
def test_compress_round_trip(codec: Compression) -> None:
    packed = compress(codec, DATA)
    assert len(packed) < len(DATA)
    assert decompress(codec, packed) == DATA
    assert decompress(codec, memoryview(packed)) == DATA


def test_what_we_write_on_the_wire() -> None:
    assert compress(Compression.GZIP, DATA)[:2] == b"\x1f\x8b"
    assert compress(Compression.LZ4, DATA)[:4] == b"\x04\x22\x4d\x18"  # a frame, not a block
    assert compress(Compression.ZSTD, DATA)[:4] == b"\x28\xb5\x2f\xfd"
    raw = compress(Compression.SNAPPY, DATA)
    assert not raw.startswith(XERIAL_MAGIC)  # raw block, like librdkafka
    assert bytes(cramjam.snappy.decompress_raw(raw)) == DATA


def test_stdlib_gzip_reads_ours_and_we_read_multi_member_gzip() -> None:
    assert gzip.decompress(compress(Compression.GZIP, DATA)) == DATA
    two = gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:])
    assert decompress(Compression.GZIP, two) == DATA


def test_snappy_reads_xerial_and_raw() -> None:
    framed = xerial(DATA)
    assert framed.startswith(XERIAL_MAGIC)
    assert decompress(Compression.SNAPPY, framed) == DATA
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(DATA))) == DATA


def test_raw_and_xerial_snappy_batches_both_decode() -> None:
    records = [(b"k%d" % i, b"value %d " % i * 20) for i in range(200)]
    raw = build_batch(records, compression=Compression.SNAPPY, now_ms=1)
    h = validate_batch(raw)
    payload = raw[61:]
    assert not payload.startswith(XERIAL_MAGIC)
    inner = decompress(Compression.SNAPPY, payload)
    rebuilt = _rewrap(raw, xerial(inner, chunk=1000))  # several chunks
    assert validate_batch(rebuilt).record_count == h.record_count
    assert list(iter_records(rebuilt)) == list(iter_records(raw))
    assert [r.key for r in iter_records(raw)] == [k for k, _ in records]


def _rewrap(batch: bytes, payload: bytes) -> bytes:
    after = batch[21:61] + payload
    return struct.pack(">qiibI", 0, len(after) + 9, -1, 2, crc32c.crc32c(after)) + after


@pytest.mark.parametrize(
    "bad",
    [
        XERIAL_MAGIC + b"\x00\x00\x00\x01",  # header cut
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + b"\x00\x00",  # chunk length cut
        XERIAL_MAGIC + struct.pack(">iii", 1, 1, 1000) + b"abc",  # chunk beyond the end
        XERIAL_MAGIC + struct.pack(">iii", 1, 1, -1),  # negative chunk
    ],
)
def test_malformed_xerial_is_corrupt(bad: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.SNAPPY, bad)


@pytest.mark.parametrize("codec", CODECS)
def test_garbage_payload_is_corrupt(codec: Compression) -> None:
    garbage_inputs = [b"", b"not compressed at all" * 10, compress(codec, DATA)[:-7]]
    if codec != Compression.SNAPPY:  # b"\x00" is a valid raw snappy block of nothing
        garbage_inputs.append(b"\x00")
    for garbage in garbage_inputs:
        with pytest.raises(CorruptRecordError):
            decompress(codec, garbage)


def test_unknown_codec() -> None:
    with pytest.raises(UnsupportedCompressionError):
        compress(7, b"x")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedCompressionError):
        decompress(6, b"x")  # type: ignore[arg-type]


# --- decompression bombs ----------------------------------------------------------------------

ZEROS = b"\x00" * (CAP * 8)


def _zstd_without_content_size(data: bytes) -> bytes:
    c = cramjam.zstd.Compressor()
    c.compress(data)
    out = bytes(c.finish())
    assert out[4] >> 6 == 0 and not out[4] & 0x20  # FCS absent
    return out


def _lz4_without_content_size(data: bytes) -> bytes:
    c = cramjam.lz4.Compressor()
    c.compress(data)
    out = bytes(c.finish())
    assert not out[4] & 0x08
    return out


BOMBS = {
    "gzip": (Compression.GZIP, gzip.compress(ZEROS)),
    "snappy-raw": (Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(ZEROS))),
    "snappy-xerial": (Compression.SNAPPY, xerial(ZEROS)),
    "lz4-with-size": (Compression.LZ4, lz4.frame.compress(ZEROS, store_size=True)),
    "lz4-no-size": (Compression.LZ4, _lz4_without_content_size(ZEROS)),
    "zstd-with-size": (Compression.ZSTD, bytes(cramjam.zstd.compress(ZEROS))),
    "zstd-no-size": (Compression.ZSTD, _zstd_without_content_size(ZEROS)),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused(name: str) -> None:
    codec, bomb = BOMBS[name]
    assert len(bomb) < len(ZEROS) // 20  # small in, 8 MiB out (snappy's ratio is ~21)
    with pytest.raises(CorruptRecordError, match="beyond the limit"):
        decompress(codec, bomb, max_bytes=CAP)
    # ... and the same payload is fine under a cap it fits in.
    assert len(decompress(codec, bomb, max_bytes=len(ZEROS))) == len(ZEROS)


def test_small_gzip_expanding_beyond_the_default_cap() -> None:
    # ~1 KiB of gzip is refused by the default 64 MiB cap once it inflates past it.
    bomb = gzip.compress(b"\x00" * (65 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 128 * 1024
    with pytest.raises(CorruptRecordError, match="beyond the limit"):
        decompress(Compression.GZIP, bomb)


def test_bomb_inside_a_batch_is_refused_by_iter_records() -> None:
    records = [(None, b"\x00" * 100_000) for _ in range(30)]
    for codec in CODECS:
        batch = build_batch(records, compression=codec, now_ms=1)
        with pytest.raises(CorruptRecordError, match="beyond the limit"):
            iter_records(batch, max_decompressed_bytes=1_000_000)
        assert len(list(iter_records(batch))) == 30


def test_lying_declared_sizes() -> None:
    # A zstd frame whose header understates its content: bounded either way; it is decoded or
    # refused as corrupt, never a crash or an unbounded allocation.
    packed = bytearray(cramjam.zstd.compress(DATA))
    fhd = packed[4]
    assert fhd >> 6 == 2 and fhd & 0x20 and not fhd & 0x03  # 4-byte FCS, single segment
    packed[5:9] = (10).to_bytes(4, "little")
    try:
        assert decompress(Compression.ZSTD, bytes(packed), max_bytes=CAP) == DATA
    except CorruptRecordError:
        pass
    # An LZ4 frame that declares more than the cap is refused from its header alone.
    lz = bytearray(lz4.frame.compress(DATA, store_size=True))
    assert lz[4] & 0x08
    lz[6:14] = (CAP * 100).to_bytes(8, "little")
    with pytest.raises(CorruptRecordError, match="beyond the limit"):
        decompress(Compression.LZ4, bytes(lz), max_bytes=CAP)
