"""``seriatim log``: inspect and verify log directories and segment files on disk.

``dump`` prints what is in a segment (or every segment of a partition directory) the way
``kafka-dump-log.sh`` does: one line per batch with offsets, position, size, CRC validity,
codec, timestamps and producer fields; ``--records`` adds one line per record. Index files
(``.index``, ``.timeindex``) are dumped entry by entry.

``verify`` checks every batch (length bounds, magic, CRC-32C, increasing offsets), that every
index entry points at the batch it claims, and that checkpoint files have valid CRCs. It exits
with 1 and names the file and byte position at the first damage, 0 when everything is clean.
Both commands only read; they take no lock, so they are safe next to a running writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import click
import crc32c

from seriatim.records import Compression, iter_records
from seriatim.storage.checkpoint import CheckpointError, read_checkpoint
from seriatim.storage.epoch import LEADER_EPOCH_FILE
from seriatim.storage.fileops import pread_exact
from seriatim.storage.index import OFFSET_ENTRY, TIME_ENTRY, IndexCorrupt, OffsetIndex, TimeIndex
from seriatim.storage.log import CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE
from seriatim.storage.segment import (
    CRC_START,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    MAX_RELATIVE_OFFSET,
    TIMEINDEX_SUFFIX,
    BatchInfo,
    Scan,
    parse_segment_name,
)


class Damage(Exception):
    def __init__(self, path: str, position: int, reason: str) -> None:
        super().__init__(f"{path}: damage at byte {position}: {reason}")


def _segment_files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if parse_segment_name(n) is not None)
        return [os.path.join(path, n) for n in names]
    return [path]


def _base_offset(path: str) -> int:
    base = parse_segment_name(os.path.basename(path))
    return 0 if base is None else base


def _batches(fd: int, size: int, *, verify_crc: bool, min_offset: int = 0) -> tuple[
        Iterator[BatchInfo], Scan]:
    scan = Scan(fd, 0, size, verify_crc=verify_crc, min_offset=min_offset)
    return iter(scan), scan


@click.group("log")
def log() -> None:
    """Inspect and verify log directories and segment files."""


@log.command("dump")
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
@click.option("--records", "show_records", is_flag=True, help="Print every record too.")
@click.option("--max-value-bytes", default=200, show_default=True,
              help="Truncate printed keys/values to this many bytes.")
def dump(path: str, show_records: bool, max_value_bytes: int) -> None:
    """Print the batches (and with --records, the records) of a segment or partition dir."""
    if path.endswith(INDEX_SUFFIX) or path.endswith(TIMEINDEX_SUFFIX):
        _dump_index(path)
        return
    for seg_path in _segment_files(path):
        _dump_segment(seg_path, show_records, max_value_bytes)


def _dump_segment(path: str, show_records: bool, max_value_bytes: int) -> None:
    click.echo(f"Dumping {path}")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        batches, scan = _batches(fd, size, verify_crc=False)
        for b in batches:
            body = pread_exact(fd, b.size, b.position)
            crc_ok = crc32c.crc32c(memoryview(body)[CRC_START:]) == b.crc
            codec = Compression(b.attributes & 0x07).name.lower() \
                if b.attributes & 0x07 <= 4 else f"unknown({b.attributes & 0x07})"
            ts_type = "LogAppendTime" if b.attributes & 0x08 else "CreateTime"
            last_seq = b.base_sequence + (b.last_offset - b.base_offset) \
                if b.base_sequence >= 0 else -1
            click.echo(
                f"baseOffset: {b.base_offset} lastOffset: {b.last_offset} "
                f"count: {b.record_count} baseSequence: {b.base_sequence} "
                f"lastSequence: {last_seq} producerId: {b.producer_id} "
                f"producerEpoch: {b.producer_epoch} partitionLeaderEpoch: {b.leader_epoch} "
                f"isTransactional: {str(bool(b.attributes & 0x10)).lower()} "
                f"isControl: {str(bool(b.attributes & 0x20)).lower()} "
                f"position: {b.position} {ts_type}: {b.max_timestamp} "
                f"firstTimestamp: {b.first_timestamp} size: {b.size} magic: 2 "
                f"compresscodec: {codec} crc: {b.crc} isValid: {str(crc_ok).lower()}")
            if show_records and crc_ok:
                for rec in iter_records(body):
                    headers = ", ".join(f"{k}={_show(v, max_value_bytes)}" for k, v in rec.headers)
                    click.echo(
                        f"| offset: {rec.offset} {ts_type}: {rec.timestamp_ms} "
                        f"keySize: {-1 if rec.key is None else len(rec.key)} "
                        f"valueSize: {-1 if rec.value is None else len(rec.value)} "
                        f"headers: [{headers}] key: {_show(rec.key, max_value_bytes)} "
                        f"payload: {_show(rec.value, max_value_bytes)}")
        if scan.stop_reason is not None:
            click.echo(f"Stopped at byte {scan.stop_position} of {size}: {scan.stop_reason}")
    finally:
        os.close(fd)


def _show(data: bytes | None, limit: int) -> str:
    if data is None:
        return "null"
    text = data[:limit].decode("utf-8", "backslashreplace")
    return text + ("..." if len(data) > limit else "")


def _dump_index(path: str) -> None:
    click.echo(f"Dumping {path}")
    base = _base_offset(path.rsplit(".", 1)[0] + LOG_SUFFIX)
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(INDEX_SUFFIX):
        usable = len(data) - len(data) % OFFSET_ENTRY.size
        for rel, pos in OFFSET_ENTRY.iter_unpack(data[:usable]):
            click.echo(f"offset: {base + rel} position: {pos}")
    else:
        usable = len(data) - len(data) % TIME_ENTRY.size
        for ts, rel in TIME_ENTRY.iter_unpack(data[:usable]):
            click.echo(f"timestamp: {ts} offset: {base + rel}")
    if usable != len(data):
        click.echo(f"{len(data) - usable} trailing bytes do not form a whole entry")


@log.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
def verify(path: str) -> None:
    """Check CRCs, offsets, indexes and checkpoints; exit 1 at the first damage."""
    try:
        total_batches, total_bytes = 0, 0
        prev_end = 0
        for seg_path in _segment_files(path):
            n, size, prev_end = _verify_segment(seg_path, prev_end)
            total_batches += n
            total_bytes += size
        if os.path.isdir(path):
            _verify_checkpoints(path)
    except Damage as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"OK: {total_batches} batches, {total_bytes} bytes verified in {path}")


def _verify_segment(path: str, min_offset: int) -> tuple[int, int, int]:
    base = _base_offset(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        batches, scan = _batches(fd, size, verify_crc=True, min_offset=max(base, min_offset))
        last_by_position: dict[int, int] = {}
        max_ts_by_last: dict[int, int] = {}
        next_offset = max(base, min_offset)
        for b in batches:
            last_by_position[b.position] = b.last_offset
            max_ts_by_last[b.last_offset] = b.max_timestamp
            next_offset = b.last_offset + 1
        if scan.stop_reason is not None:
            raise Damage(path, scan.stop_position, scan.stop_reason)
    finally:
        os.close(fd)
    stem = path[: -len(LOG_SUFFIX)] if path.endswith(LOG_SUFFIX) else path
    _verify_offset_index(stem + INDEX_SUFFIX, base, size, last_by_position)
    _verify_time_index(stem + TIMEINDEX_SUFFIX, base, max_ts_by_last)
    return len(last_by_position), size, next_offset


def _verify_offset_index(path: str, base: int, log_size: int,
                         last_by_position: dict[int, int]) -> None:
    if not os.path.exists(path):
        click.echo(f"note: {path} is missing (it will be rebuilt on open)")
        return
    index = OffsetIndex(path)
    try:
        index.load(max(log_size, 1))
    except IndexCorrupt as exc:
        raise Damage(path, 0, str(exc)) from None
    for i in range(len(index)):
        rel, pos = index.rel[i], index.pos[i]
        if last_by_position.get(pos) != base + rel:
            raise Damage(path, i * OFFSET_ENTRY.size,
                         f"entry (offset {base + rel}, position {pos}) does not point at the "
                         "batch ending at that offset")


def _verify_time_index(path: str, base: int, max_ts_by_last: dict[int, int]) -> None:
    if not os.path.exists(path):
        click.echo(f"note: {path} is missing (it will be rebuilt on open)")
        return
    index = TimeIndex(path)
    try:
        index.load(MAX_RELATIVE_OFFSET)
    except IndexCorrupt as exc:
        raise Damage(path, 0, str(exc)) from None
    for i in range(len(index)):
        ts, rel = index.ts[i], index.rel[i]
        if max_ts_by_last.get(base + rel) != ts:
            raise Damage(path, i * TIME_ENTRY.size,
                         f"entry (timestamp {ts}, offset {base + rel}) does not match the batch "
                         "ending at that offset")


def _verify_checkpoints(directory: str) -> None:
    for name, arity in ((RECOVERY_POINT_FILE, 1), (LOG_START_FILE, 1),
                        (CLEAN_SHUTDOWN_FILE, 1), (LEADER_EPOCH_FILE, 2)):
        path = os.path.join(directory, name)
        try:
            read_checkpoint(path, arity)
        except CheckpointError as exc:
            raise Damage(path, 0, str(exc)) from None
