"""Kafka RecordBatch v2: header, CRC32C, varints, records, builder, codecs.

A pure layer: it imports nothing of seriatim but ``errors`` and ``limits``, does no I/O and
keeps no state. ``batch`` holds the format (validate, iterate, build, rewrite in place),
``codecs`` the compression codecs with bounded inflation, ``varint`` Kafka's zigzag varints.
The byte tables are in docs/formats.md.
"""

from seriatim.records.batch import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    Header,
    Record,
    RecordInput,
    TimestampType,
    build_batch,
    check_record_framing,
    iter_batches,
    iter_records,
    parse_header,
    set_base_offset,
    set_partition_leader_epoch,
    validate_batch,
)
from seriatim.records.codecs import XERIAL_MAGIC, Compression, compress, decompress

__all__ = [
    "BATCH_HEADER_SIZE",
    "XERIAL_MAGIC",
    "BatchHeader",
    "Compression",
    "Header",
    "Record",
    "RecordInput",
    "TimestampType",
    "build_batch",
    "check_record_framing",
    "compress",
    "decompress",
    "iter_batches",
    "iter_records",
    "parse_header",
    "set_base_offset",
    "set_partition_leader_epoch",
    "validate_batch",
]
