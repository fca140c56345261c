"""Where a replica's records come from: an embedded log, or a partition on a Kafka broker.

Theory of operation
-------------------
A :class:`Source` delivers the records of one log partition from a given offset, in offset
order, as batches (sequences of records), at least once. It stores nothing: the offset to
resume from lives in the state machine (``applied_offset``), so no consumer-group commits are
needed and a restart simply asks again from the stored offset.

``batches(from_offset, stop)`` is a generator run by the replica's thread. It returns when
``stop`` is set. It may yield an empty list as an *idle tick* (nothing new right now), so the
runner can check its lag; a source that cannot tell when it is idle need not.

Both sources refuse to start below the log's start offset (the records are gone: bootstrap
from a snapshot, :class:`ReplicaBehindLogError`) or above its end (a replica ahead of its log
is fed by the wrong log). A gap *during* following is fine (compaction, transaction markers)
unless the log start moved past the next expected offset (retention deleted records the
replica had not applied yet).

* :class:`LogSource` follows an embedded :class:`~seriatim.storage.embedded.Log`: what
  ``Log.follow`` delivers, read as whole log batches and handed over as
  :class:`~seriatim.records.columns.RecordColumns`; a batch ends at ``max_batch_records`` or
  where the log currently ends, so a batch is committed before the source waits for more.
* :class:`KafkaSource` reads a topic partition from any Kafka-compatible broker with
  confluent-kafka: ``assign()`` of one partition at the stored offset, no group, no commits,
  ``auto.offset.reset=error`` (out of range is an error, never a silent jump), and
  ``isolation.level=read_committed``. The watermarks (for the lag) are refreshed when idle
  and at most once a second while busy; they are cached for other threads.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Protocol

from seriatim.errors import OffsetOutOfRangeError
from seriatim.records import Record
from seriatim.records.columns import RecordColumns, append_batch
from seriatim.state.machine import ReplicaBehindLogError, SourceError, StateError
from seriatim.storage.embedded import Log

__all__ = ["Batches", "KafkaSource", "LogSource", "Source"]

#: What a source yields: sequences of records (an empty one is an idle tick).
Batches = Generator[Sequence[Record], None, None]

DEFAULT_MAX_BATCH_RECORDS = 1000
#: Bytes of whole log batches LogSource reads at a time (at least one batch).
_READ_BYTES = 1 << 20
_LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes before what batchLength counts


class Source(Protocol):
    def batches(self, from_offset: int, stop: threading.Event) -> Batches:
        """Records from ``from_offset`` on, in order, until ``stop`` is set."""
        ...

    def end_offset(self) -> int:
        """The log end offset (the next offset to be written), as last seen."""
        ...

    def position(self) -> int:
        """The offset after the last record or marker delivered (-1 when unknown)."""
        ...

    def close(self) -> None:
        ...


def _check_start(from_offset: int, start: int, end: int, what: str) -> None:
    if from_offset < start:
        raise ReplicaBehindLogError(
            f"the replica is at offset {from_offset} but {what} starts at {start}: "
            "the records in between were deleted; bootstrap from a snapshot")
    if from_offset > end:
        raise StateError(f"the replica is at offset {from_offset}, past the end of {what} "
                         f"({end}): is it fed by the right log?")


class LogSource:
    """Follows an embedded log. The caller owns the log (and closes it) unless ``owns``."""

    def __init__(self, log: Log, *, max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS,
                 poll_interval_s: float = 0.05, owns: bool = False) -> None:
        if max_batch_records < 1:
            raise ValueError("max_batch_records must be >= 1")
        self.log = log
        self._max = max_batch_records
        self._poll_s = poll_interval_s
        self._owns = owns
        self._position = -1
        self._read_bytes = _READ_BYTES

    def batches(self, from_offset: int, stop: threading.Event) -> Batches:
        """What ``Log.follow`` delivers, as :class:`RecordColumns` batches.

        Hot path: rather than ``Log.follow`` (a :class:`Record` and three generator steps per
        record), this reads whole batches with ``PartitionLog.read`` (the broker's fetch path)
        and decodes them with :func:`~seriatim.records.columns.append_batch` into columns
        (~0.4 us a record against ~0.9 us). Same records, same order, same waiting: a
        readonly log is refreshed before each read, an offset that left the log's range
        under us is re-checked, and nothing new means a wait of ``poll_interval_s``. It reads
        ahead (up to ``_READ_BYTES`` at a time); ``position()`` counts only what it yielded."""
        log = self.log
        plog = log.partition_log
        if log.readonly:
            log.refresh()
        _check_start(from_offset, log.start_offset, log.end_offset, f"log {log.path}")
        expected = from_offset  # the offset after the last record decoded
        pending = RecordColumns()
        while not stop.is_set():
            if log.readonly:
                log.refresh()
            end = log.end_offset
            start = max(expected, log.start_offset)
            got = False
            if start < end:
                try:
                    result = plog.read(start, self._read_bytes, max_offset=end)
                except OffsetOutOfRangeError:
                    result = None  # retention or truncation moved the range; re-check
                for piece in result.slices if result is not None else ():
                    try:
                        data = piece.read()
                    except OSError as exc:
                        if exc.errno != errno.EBADF:
                            raise
                        break  # the segment was deleted since read(): re-check the range
                    pos = 0
                    while pos + _LOG_OVERHEAD <= len(data):
                        n0 = len(pending)
                        header = append_batch(pending, data, pos, start=start, stop=end)
                        pos += header.batch_length + _LOG_OVERHEAD
                        if len(pending) > n0:
                            got = True
                            expected = self._check_gap(pending.offsets, n0, expected)
                    if pos != len(data):
                        raise SourceError(f"log {log.path}: a read ended inside a batch")
                    while len(pending) >= self._max:
                        chunk = pending[:self._max]
                        pending = pending[self._max:]
                        self._position = chunk.offsets[-1] + 1
                        yield chunk
                        if stop.is_set():
                            break
                    if stop.is_set():
                        break
                if pending and not stop.is_set() and expected >= log.end_offset:
                    self._position = expected
                    chunk, pending = pending, RecordColumns()
                    yield chunk  # caught up: hand over the rest before waiting for more
            if not got and not stop.is_set():
                stop.wait(self._poll_s)
        # Stopped: records decoded but not handed over are dropped (the machine's applied
        # offset says where the next run starts).

    def _check_gap(self, offsets: list[int], n0: int, expected: int) -> int:
        """``expected`` after the records appended from index ``n0``; a gap is fine unless
        the log start moved past the next expected offset (records deleted unapplied)."""
        first, last = offsets[n0], offsets[-1]
        if first > expected or last - first != len(offsets) - 1 - n0:
            for offset in offsets[n0:]:
                if offset > expected and self.log.start_offset > expected:
                    raise ReplicaBehindLogError(
                        f"log {self.log.path}: records from {expected} were deleted (the log "
                        f"now starts at {self.log.start_offset}) before the replica applied "
                        "them")
                expected = offset + 1
        return last + 1

    def end_offset(self) -> int:
        return self.log.end_offset

    def position(self) -> int:
        return self._position

    def close(self) -> None:
        if self._owns:
            self.log.close()


def _to_record(msg: Any) -> Record:
    offset = msg.offset()
    if offset is None:
        raise SourceError("the client delivered a message without an offset")
    headers = tuple((str(k), v if v is None or isinstance(v, bytes) else str(v).encode())
                    for k, v in (msg.headers() or ()))
    return Record(offset=int(offset), timestamp_ms=int(msg.timestamp()[1]), key=msg.key(),
                  value=msg.value(), headers=headers)


class KafkaSource:
    """One partition of a topic on a Kafka-compatible broker, through confluent-kafka."""

    def __init__(self, bootstrap_servers: str, topic: str, partition: int = 0, *,
                 config: Mapping[str, Any] | None = None,
                 max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS,
                 poll_timeout_s: float = 0.1, request_timeout_s: float = 10.0) -> None:
        from confluent_kafka import Consumer

        if max_batch_records < 1:
            raise ValueError("max_batch_records must be >= 1")
        self.topic = topic
        self.partition = partition
        self._max = max_batch_records
        self._poll_s = poll_timeout_s
        self._timeout_s = request_timeout_s
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            # Required by the client, never used: assign() joins no group, nothing commits.
            "group.id": "seriatim-state-replica",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
        }
        conf.update(config or {})
        self._consumer = Consumer(conf)
        # The runner's thread consumes while another thread may ask end_offset() (lag): two
        # threads inside the client at once hung get_watermark_offsets past its timeout (seen
        # once in the suite, 300 s), so every call into the consumer holds this lock.
        self._client_lock = threading.Lock()
        self._closed = False
        self._end = -1
        self._position = -1
        self._watermarks_at = 0.0

    def _tp(self, offset: int | None = None) -> Any:
        from confluent_kafka import TopicPartition

        if offset is None:
            return TopicPartition(self.topic, self.partition)
        return TopicPartition(self.topic, self.partition, offset)

    def _refresh_watermarks(self) -> tuple[int, int]:
        from confluent_kafka import KafkaException

        try:
            with self._client_lock:
                low, high = self._consumer.get_watermark_offsets(
                    self._tp(), timeout=self._timeout_s, cached=False)
        except KafkaException as exc:
            raise SourceError(f"{self.topic}/{self.partition}: cannot read the watermarks: "
                              f"{exc}") from exc
        self._end = int(high)
        self._watermarks_at = time.monotonic()
        return int(low), int(high)

    def batches(self, from_offset: int, stop: threading.Event) -> Batches:
        low, high = self._refresh_watermarks()
        _check_start(from_offset, low, high, f"topic {self.topic} partition {self.partition}")
        with self._client_lock:
            self._consumer.assign([self._tp(from_offset)])
        self._position = from_offset
        expected = from_offset
        while not stop.is_set():
            with self._client_lock:
                msgs = self._consumer.consume(num_messages=self._max, timeout=self._poll_s)
            batch: list[Record] = []
            for msg in msgs:
                if msg.error() is not None:
                    self._on_error(msg.error(), expected)
                    continue
                rec = _to_record(msg)
                if rec.offset < expected:
                    continue  # redelivery after a reconnect: already handed over
                batch.append(rec)
                expected = rec.offset + 1
            if batch:
                self._position = expected
                # Refresh at most once a second while busy, but always when this batch reaches
                # the last end seen: "lag 0" must be judged against a fresh high watermark, or
                # a replica that drains quickly declares itself caught up too early.
                if expected >= self._end or time.monotonic() - self._watermarks_at > 1.0:
                    self._refresh_watermarks()
                yield batch
            else:
                self._refresh_watermarks()
                with self._client_lock:
                    pos = self._consumer.position([self._tp()])[0].offset
                if pos >= 0:  # past transaction markers and aborted records too
                    self._position = max(expected, int(pos))
                yield []

    def _on_error(self, err: Any, expected: int) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        if code in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
            raise ReplicaBehindLogError(
                f"topic {self.topic} partition {self.partition}: offset {expected} is out of "
                f"range ({err.str()}); bootstrap from a snapshot")
        if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC) or err.fatal():
            raise SourceError(f"topic {self.topic} partition {self.partition}: {err.str()}")
        # Anything else (transport errors, a leader moving) the client retries by itself.

    def end_offset(self) -> int:
        """The high watermark as last seen, and at least the position (the watermarks are
        refreshed at most once a second while busy, so the last seen one may be behind what
        was already delivered)."""
        if self._end < 0 and not self._closed:
            self._refresh_watermarks()
        return max(self._end, self._position)

    def position(self) -> int:
        return self._position

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._client_lock:
                self._consumer.close()
