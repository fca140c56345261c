"""Batches from kafka-python's and aiokafka's builders decode with ours, and vice versa.

Both clients ship a ``DefaultRecordBatchBuilder(magic, compression_type, is_transactional,
producer_id, producer_epoch, base_sequence, batch_size)`` with ``append(offset, timestamp, key,
value, headers)`` and ``build()``, and a reader ``DefaultRecordBatch(buffer)`` that iterates
records with ``offset``, ``timestamp``, ``key``, ``value`` and ``headers``. aiokafka has a
Cython and a pure-Python variant; both are exercised. kafka-python and aiokafka write xerial
snappy; we write raw snappy blocks, which their readers must accept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.record import default_records as aiokafka_records
from kafka.record import default_records as kafka_records

from seriatim.records import (
    XERIAL_MAGIC,
    Compression,
    Record,
    build_batch,
    iter_records,
    validate_batch,
)

NOW_MS = 1_700_000_000_000

BUILDERS: dict[str, Any] = {
    "kafka-python": kafka_records.DefaultRecordBatchBuilder,
    "aiokafka": aiokafka_records.DefaultRecordBatchBuilder,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchBuilderPy,
}
READERS: dict[str, Any] = {
    "kafka-python": kafka_records.DefaultRecordBatch,
    "aiokafka": aiokafka_records.DefaultRecordBatch,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchPy,
}


def sample() -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]]:
    # Compressible values (clients send uncompressed when compression does not help) and
    # more than 32 KiB in all, so xerial writers emit several chunks.
    out: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = []
    for i in range(300):
        key = None if i % 7 == 0 else b"key-%d" % i
        value = None if i % 11 == 5 else b"value %d " % i * (1 + i % 30)
        headers: list[tuple[str, bytes | None]] = (
            [("trace", b"t%d" % i), ("empty", b"")] if i % 3 == 0 else []
        )
        out.append((key, value, headers, NOW_MS + i * 3 - 50))
    return out


def expected_records(base_offset: int) -> list[Record]:
    return [Record(base_offset + i, ts, k, v, tuple(h)) for i, (k, v, h, ts) in enumerate(sample())]


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("client", list(BUILDERS))
def test_client_built_batches_decode_with_ours(client: str, codec: Compression) -> None:
    builder = BUILDERS[client](
        magic=2,
        compression_type=int(codec),
        is_transactional=0,
        producer_id=1234,
        producer_epoch=5,
        base_sequence=77,
        batch_size=10 * 1024 * 1024,
    )
    for i, (key, value, headers, ts) in enumerate(sample()):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
    batch = bytes(builder.build())
    header = validate_batch(batch)
    assert header.compression is codec
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (1234, 5, 77)
    assert header.record_count == len(sample())
    if codec == Compression.SNAPPY:
        assert batch[61:69] == XERIAL_MAGIC
    assert list(iter_records(batch)) == expected_records(0)


def _read_with(reader: Callable[[bytes], Any], batch: bytes) -> list[Record]:
    parsed = reader(batch)
    assert parsed.validate_crc()
    return [
        Record(
            r.offset,
            r.timestamp,
            r.key,
            r.value,
            tuple((k, v) for k, v in r.headers),
        )
        for r in parsed
    ]


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("client", list(READERS))
def test_our_batches_decode_with_client_readers(client: str, codec: Compression) -> None:
    batch = build_batch(sample(), base_offset=1000, compression=codec, now_ms=NOW_MS)
    if codec == Compression.SNAPPY:
        assert batch[61:69] != XERIAL_MAGIC  # raw block, librdkafka style
    assert _read_with(READERS[client], batch) == expected_records(1000)


def test_client_reader_sees_our_attributes() -> None:
    batch = build_batch(
        [(b"k", b"v")],
        compression=Compression.GZIP,
        producer_id=9,
        producer_epoch=1,
        base_sequence=0,
        transactional=True,
        now_ms=NOW_MS,
    )
    parsed = kafka_records.DefaultRecordBatch(batch)
    assert parsed.is_transactional
    assert parsed.compression_type == int(Compression.GZIP)
    assert (parsed.producer_id, parsed.producer_epoch, parsed.base_sequence) == (9, 1, 0)
    assert parsed.max_timestamp == NOW_MS
