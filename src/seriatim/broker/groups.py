"""The group coordinator's driver: appends its records, replays them, runs its timers.

Theory of operation
-------------------
:class:`GroupDriver` wraps the pure :class:`~seriatim.coordinator.GroupCoordinator` for the
broker. It is the coordinator's one owner and runs on the event-loop thread only.

* **Calls.** A handler calls :meth:`GroupDriver.call` with a coordinator method and its
  request. The driver makes a token and a future for it, runs the method, and processes the
  :class:`~seriatim.coordinator.Output`: the records are appended to ``__consumer_offsets``
  (one batch per partition) and at once replayed into the coordinator -- the append, the
  replay and the decision happen in one synchronous step, so no other call sees a state in
  between. Replies are sent (futures resolved) only when the records are durable: the topic
  has ``flush.policy=always`` and the broker's group commit fsyncs it, so an OffsetCommit is
  answered after its fsync. An Output without records is answered at once.
* **Timers.** After every call the driver re-arms one ``loop.call_later`` at the
  coordinator's :meth:`next_deadline_ns` (session expiry, delayed joins, offset retention); the
  callback calls :meth:`tick` and processes its Output like a call's. Time comes from the
  broker's injected clock.
* **Load.** :meth:`load` (after the data dir is open, before serving) replays every record
  of every ``__consumer_offsets`` partition, then lets the coordinator materialize its groups.

The topic. ``__consumer_offsets`` is created on the first record, with
``offsets.topic.num.partitions`` partitions (Kafka's default 50; an existing topic keeps its
count), ``cleanup.policy=compact``, ``flush.policy=always`` and ``offsets.topic.segment.bytes``.
A group's partition is Kafka's: ``abs(javaHashCode(group_id)) % partitions``, so the layout is
Kafka's own. A failed append (the partition went offline) answers every reply of that Output
with COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from seriatim.broker.driver import CoordinatorDriver
from seriatim.coordinator import (
    CoordinatorConfig,
    GroupCoordinator,
    LogRecord,
    Output,
    failed,
)
from seriatim.errors import ErrorCode, KafkaError, StorageError, invariant
from seriatim.records import build_batch, iter_records
from seriatim.storage.producer_state import control_marker

if TYPE_CHECKING:
    from seriatim.broker.state import BrokerState
    from seriatim.storage import PartitionLog
    from seriatim.storage.segment import BatchInfo

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
_DEFAULT_SEGMENT_BYTES = 104_857_600  # offsets.topic.segment.bytes
_DEFAULT_RETENTION_CHECK_MS = 600_000  # offsets.retention.check.interval.ms
_DEFAULT_METADATA_MAX_BYTES = 4096  # offset.metadata.max.bytes
_ATTR_TXN = 0x10
_ATTR_CONTROL = 0x20


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, int32 wrap-around)."""
    h = 0
    raw = s.encode("utf-16-be")
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode) % offsets.topic.num.partitions``."""
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


def coordinator_config(state: BrokerState) -> CoordinatorConfig:
    cfg = state.config

    def raw_int(name: str, default: int) -> int:
        value = cfg.get(name)
        return int(value) if value is not None else default

    return CoordinatorConfig(
        initial_rebalance_delay_ms=cfg.group_initial_rebalance_delay_ms,
        min_session_timeout_ms=cfg.group_min_session_timeout_ms,
        max_session_timeout_ms=cfg.group_max_session_timeout_ms,
        max_group_size=raw_int("group.max.size", 2**31 - 1),
        offsets_retention_ms=cfg.offsets_retention_minutes * 60_000,
        offsets_retention_check_interval_ms=raw_int(
            "offsets.retention.check.interval.ms", _DEFAULT_RETENTION_CHECK_MS
        ),
        offset_metadata_max_bytes=raw_int("offset.metadata.max.bytes", _DEFAULT_METADATA_MAX_BYTES),
    )


class GroupDriver(CoordinatorDriver):
    """Runs the group coordinator inside the broker (see the module docstring)."""

    name = "group coordinator"

    def __init__(self, state: BrokerState) -> None:
        super().__init__(state)
        self.core = GroupCoordinator(coordinator_config(state), state.clock)

    # --- lifecycle ----------------------------------------------------------------------------

    def load(self) -> int:
        """Replay ``__consumer_offsets`` into the coordinator; returns the records replayed."""
        manager = self.state.manager
        count = 0
        info = manager.topics().get(OFFSETS_TOPIC)
        if info is not None:
            for p in range(info.partitions):
                for header, batch in manager.get(OFFSETS_TOPIC, p).iter_batches():
                    count += self._replay_batch(header, batch)
        self.core.finish_loading()
        log.info("group coordinator loaded %d record(s) from %s", count, OFFSETS_TOPIC)
        return count

    def _replay_batch(self, header: BatchInfo, batch: bytes) -> int:
        """Replay one stored batch: plain records, a transaction's pending offsets, or its
        COMMIT/ABORT marker."""
        pid = header.producer_id
        if header.attributes & _ATTR_CONTROL:
            marker = control_marker(batch)
            if marker is not None and pid >= 0:
                self.core.replay_marker(pid, marker[0])
            return 0
        count = 0
        for record in iter_records(batch):
            if record.key is None:
                continue  # not ours (a compacted topic cannot hold one anyway)
            if header.attributes & _ATTR_TXN and pid >= 0:
                self.core.replay_pending(pid, record.key, record.value)
            else:
                self.core.replay(record.key, record.value)
            count += 1
        return count

    # --- calls --------------------------------------------------------------------------------

    def touched(self) -> None:
        """After a direct (reply-less) coordinator call such as a heartbeat."""
        self._rearm()

    def _process(self, out: Output) -> None:
        if not out.records:
            self._resolve(out.replies)
            return
        try:
            plogs = self._append(out.records)
        except (StorageError, KafkaError) as exc:
            log.error("cannot store group records: %s", exc)
            self._resolve([(t, self._failed(r)) for t, r in out.replies])
            return
        for record in out.records:
            if record.producer_id >= 0:
                self.core.replay_pending(record.producer_id, record.key, record.value)
            else:
                self.core.replay(record.key, record.value)
        self._reply_after([(OFFSETS_TOPIC, p, plog) for p, plog in plogs], out.replies)

    def _tick(self) -> Output:
        return self.core.tick()

    def _delay_s(self) -> float:
        return (self.core.next_deadline_ns() - self.state.clock.monotonic_ns()) / 1e9

    def _failed(self, result: Any) -> Any:
        return failed(result, ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def _append(self, records: list[LogRecord]) -> list[tuple[int, PartitionLog]]:
        partitions = self._ensure_topic()
        by_partition: dict[tuple[int, int, int], list[LogRecord]] = {}
        for record in records:
            p = partition_for(record.group_id, partitions)
            key = (p, record.producer_id, record.producer_epoch)
            by_partition.setdefault(key, []).append(record)
        now_ms = self.state.clock.wall_ms()
        written = []
        for (p, pid, epoch), recs in sorted(by_partition.items()):
            plog = self.state.manager.get(OFFSETS_TOPIC, p)
            batch = build_batch(
                [(r.key, r.value) for r in recs],
                timestamp_ms=now_ms,
                partition_leader_epoch=self.state.leader_epoch,
                producer_id=pid,
                producer_epoch=epoch,
                transactional=pid >= 0,
            )
            info = plog.append_batch(bytearray(batch), leader_epoch=self.state.leader_epoch)
            self.state.appended(OFFSETS_TOPIC, p, plog, info)
            written.append((p, plog))
        return written

    def partition_of(self, group_id: str) -> int:
        """The ``__consumer_offsets`` partition of ``group_id`` (creating the topic)."""
        return partition_for(group_id, self._ensure_topic())

    def _ensure_topic(self) -> int:
        cfg = self.state.config
        segment_bytes = cfg.get("offsets.topic.segment.bytes") or str(_DEFAULT_SEGMENT_BYTES)
        return self._ensure_internal_topic(
            OFFSETS_TOPIC, cfg.offsets_topic_num_partitions, segment_bytes
        )


def driver(state: BrokerState) -> GroupDriver:
    """The broker's group driver (set up by the app after the data dir is open)."""
    groups = state.groups
    invariant(groups is not None, "the group coordinator is not running")
    assert groups is not None
    return groups
