"""The transaction coordinator's driver: appends its records, writes markers, runs its timer.

Theory of operation
-------------------
:class:`TransactionDriver` wraps the pure :class:`~seriatim.coordinator.transactions.
TransactionCoordinator` for the broker, as ``broker/groups.py`` wraps the group coordinator;
it is the coordinator's one owner and runs on the event-loop thread only.

* **Calls.** A handler awaits :meth:`call` with a coordinator method and its arguments. The
  driver processes the :class:`TxnOutput` synchronously: records are appended to
  ``__transaction_state`` (one batch per partition) and at once replayed; then every
  :class:`MarkerRequest` is carried out -- one control batch (COMMIT or ABORT, producer id and
  epoch of the transaction, coordinator epoch 0) appended to each partition of the
  transaction; a marker on ``__consumer_offsets`` is also replayed into the group coordinator,
  which makes (or drops) that producer's pending transactional offsets -- and then
  :meth:`markers_written` gives the Complete* record, processed the same way. Replies are
  resolved once every partition touched (the state topic and the markers' partitions) is
  durable under the broker's group commit.
* **Crash safety.** The Prepare* record is written before any marker and the Complete* record
  after all of them; a restart between the two finds Prepare* in the log and
  :meth:`TransactionCoordinator.finish_loading` asks for the markers again (a repeated marker
  is harmless: it finds no open transaction). An Ongoing transaction survives a restart and is
  either ended by its producer or aborted by ``transaction.timeout.ms``.
* **Timer.** One ``loop.call_later`` at the coordinator's :meth:`next_deadline_ms` (broker
  wall clock): timeouts abort (fencing the producer's epoch), failed marker writes retry.

The topic: ``__transaction_state``, ``transaction.state.log.num.partitions`` partitions (Kafka's
default 50), ``cleanup.policy=compact``, ``flush.policy=always``; a transactional id's
partition is Kafka's ``abs(javaHashCode(id)) % partitions``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any

from seriatim.broker.driver import CoordinatorDriver
from seriatim.broker.groups import OFFSETS_TOPIC, partition_for
from seriatim.coordinator.transactions import (
    InitResult,
    MarkerRequest,
    TransactionCoordinator,
    TxnConfig,
    TxnOutput,
    TxnRecord,
)
from seriatim.errors import ErrorCode, KafkaError, StorageError, invariant
from seriatim.records import build_batch

if TYPE_CHECKING:
    from seriatim.broker.state import BrokerState
    from seriatim.storage import PartitionLog

log = logging.getLogger(__name__)

TXN_TOPIC = "__transaction_state"
COORDINATOR_EPOCH = 0  # one node, never re-elected
_DEFAULT_SEGMENT_BYTES = 104_857_600


def marker_batch(producer_id: int, epoch: int, commit: bool, timestamp_ms: int,
                 leader_epoch: int) -> bytes:
    """An EndTransactionMarker control batch: key (version 0, type 1 commit / 0 abort), value
    (version 0, coordinator epoch)."""
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, COORDINATOR_EPOCH)
    return build_batch([(key, value)], timestamp_ms=timestamp_ms, producer_id=producer_id,
                       producer_epoch=epoch, base_sequence=-1, transactional=True,
                       control=True, partition_leader_epoch=leader_epoch)


class TransactionDriver(CoordinatorDriver):
    """Runs the transaction coordinator inside the broker (see the module docstring)."""

    name = "transaction coordinator"

    def __init__(self, state: BrokerState) -> None:
        super().__init__(state)
        raw = state.config.get("transaction.max.timeout.ms")
        expiry = state.config.get("transactional.id.expiration.ms")
        config = TxnConfig(max_timeout_ms=int(raw) if raw is not None else 900_000,
                           id_expiration_ms=int(expiry) if expiry is not None else 604_800_000)
        self.core = TransactionCoordinator(config, state.clock, state.next_producer_id)

    # --- lifecycle ----------------------------------------------------------------------------

    def load(self) -> int:
        manager = self.state.manager
        count = 0
        info = manager.topics().get(TXN_TOPIC)
        if info is not None:
            for p in range(info.partitions):
                for record in manager.get(TXN_TOPIC, p).read_records():
                    if record.key is not None:
                        self.core.replay(record.key, record.value)
                        count += 1
        log.info("transaction coordinator loaded %d record(s) from %s", count, TXN_TOPIC)
        return count

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._process(self.core.finish_loading())  # markers of interrupted commits/aborts
        self._rearm()

    def _tick(self) -> TxnOutput:
        return self.core.tick()

    def _delay_s(self) -> float:
        return (self.core.next_deadline_ms() - self.state.clock.wall_ms()) / 1000

    def _failed(self, result: Any) -> Any:
        return _failed(result)

    # --- calls --------------------------------------------------------------------------------

    def verify(self, transactional_id: str, producer_id: int, epoch: int, topic: str,
               partition: int) -> ErrorCode:
        return self.core.verify(transactional_id, producer_id, epoch, topic, partition)

    def _process(self, out: TxnOutput) -> None:
        plogs: list[tuple[str, int, PartitionLog]] = []
        try:
            plogs += self._append(out.records)
        except (StorageError, KafkaError) as exc:
            log.error("cannot store transaction records: %s", exc)
            self._resolve([(t, _failed(r)) for t, r in out.replies])
            for m in out.markers:
                self.core.markers_failed(m.transactional_id)
            return
        for record in out.records:
            self.core.replay(record.key, record.value)
        for marker in out.markers:
            written = self._write_markers(marker)
            if written is None:
                self.core.markers_failed(marker.transactional_id)
                continue
            plogs += written
            done = self.core.markers_written(marker.transactional_id, marker.producer_id,
                                             marker.producer_epoch)
            try:
                plogs += self._append(done.records)
            except (StorageError, KafkaError) as exc:
                log.error("cannot complete transaction %s: %s", marker.transactional_id, exc)
                self.core.markers_failed(marker.transactional_id)
                continue
            for record in done.records:
                self.core.replay(record.key, record.value)
        if out.replies:
            self._reply_after(plogs, out.replies)

    def _write_markers(self, marker: MarkerRequest
                       ) -> list[tuple[str, int, PartitionLog]] | None:
        """Append the marker to every partition of the transaction; None if one failed for a
        reason a retry may fix (storage)."""
        state = self.state
        now_ms = state.clock.wall_ms()
        written = []
        for topic, partition in marker.partitions:
            plog = state.partition(topic, partition)
            if plog is None:
                log.warning("transaction %s: partition %s-%d is gone; no marker",
                            marker.transactional_id, topic, partition)
                continue
            batch = marker_batch(marker.producer_id, marker.producer_epoch, marker.commit,
                                 now_ms, state.leader_epoch)
            try:
                info = plog.append_batch(bytearray(batch), leader_epoch=state.leader_epoch)
            except StorageError as exc:
                log.error("transaction %s: marker to %s-%d failed: %s",
                          marker.transactional_id, topic, partition, exc)
                return None
            except KafkaError as exc:  # e.g. the partition saw a newer epoch: cannot succeed
                log.warning("transaction %s: marker to %s-%d refused: %s",
                            marker.transactional_id, topic, partition, exc)
                continue
            state.appended(topic, partition, plog, info)
            if topic == OFFSETS_TOPIC and state.groups is not None:
                state.groups.core.replay_marker(marker.producer_id, marker.commit)
            written.append((topic, partition, plog))
        return written

    def _append(self, records: list[TxnRecord]) -> list[tuple[str, int, PartitionLog]]:
        if not records:
            return []
        partitions = self._ensure_topic()
        by_partition: dict[int, list[TxnRecord]] = {}
        for record in records:
            by_partition.setdefault(partition_for(record.transactional_id, partitions),
                                    []).append(record)
        now_ms = self.state.clock.wall_ms()
        written = []
        for p, recs in sorted(by_partition.items()):
            plog = self.state.manager.get(TXN_TOPIC, p)
            batch = build_batch([(r.key, r.value) for r in recs], timestamp_ms=now_ms,
                                partition_leader_epoch=self.state.leader_epoch)
            info = plog.append_batch(bytearray(batch), leader_epoch=self.state.leader_epoch)
            self.state.appended(TXN_TOPIC, p, plog, info)
            written.append((TXN_TOPIC, p, plog))
        return written

    def _ensure_topic(self) -> int:
        cfg = self.state.config
        raw = cfg.get("transaction.state.log.num.partitions")
        segment_bytes = cfg.get("transaction.state.log.segment.bytes") or str(
            _DEFAULT_SEGMENT_BYTES
        )
        return self._ensure_internal_topic(
            TXN_TOPIC, int(raw) if raw is not None else 50, segment_bytes
        )

def _failed(result: Any) -> Any:
    if isinstance(result, InitResult):
        return InitResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    return ErrorCode.COORDINATOR_NOT_AVAILABLE


def driver(state: BrokerState) -> TransactionDriver:
    txns = state.transactions
    invariant(txns is not None, "the transaction coordinator is not running")
    assert txns is not None
    return txns
