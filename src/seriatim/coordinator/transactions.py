"""The transaction coordinator, as a pure state machine (Kafka's TransactionCoordinator).

Theory of operation
-------------------
:class:`TransactionCoordinator` owns every ``transactional.id`` of the broker. Like the group
coordinator it does no I/O: each call reads the injected clock once and returns a
:class:`TxnOutput` -- records for ``__transaction_state``, replies keyed by the caller's token,
and :class:`MarkerRequest` s (write COMMIT/ABORT markers to these partitions). The driver
(``broker/transactions.py``) appends the records, replays them, writes the markers, then calls
:meth:`markers_written`, whose output completes the transaction.

**Stored state changes only in** :meth:`replay` (Kafka's TransactionLogValue per id: producer
id and epoch, timeout, state, partitions, timestamps); a restart replays the topic and calls
:meth:`finish_loading`, which re-requests the markers of every transaction that was preparing
to commit or abort when the broker stopped (markers are idempotent: a second one changes
nothing). Memory-only: ``last_epoch`` (the epoch before the latest bump, so a producer whose
transaction timed out may re-initialise with its old epoch, KIP-588) and which transactions
have markers in flight.

States and transitions (Kafka's ids in parentheses)::

    Empty(0) --AddPartitions--> Ongoing(1) --EndTxn--> PrepareCommit(2) | PrepareAbort(3)
    PrepareCommit --markers written--> CompleteCommit(4); PrepareAbort --> CompleteAbort(5)
    Empty | Complete* --InitProducerId--> Empty, epoch + 1 (a new producer id at epoch 32767)
    Complete* --AddPartitions--> Ongoing
    Ongoing --InitProducerId or transaction.timeout.ms--> PrepareAbort at epoch + 1 (fencing)

Fencing: an InitProducerId for a transactional id bumps its epoch, so the previous producer
(a zombie) gets PRODUCER_FENCED from the coordinator and INVALID_PRODUCER_EPOCH from the
partitions once the bumped-epoch markers reach them. A timed-out transaction is aborted the
same way, with the epoch bumped, so its producer can no longer add to it.

Invariants (:meth:`check_invariants`): an Ongoing or Prepare* transaction has partitions and a
start time; Empty and Complete* transactions have none; epochs are in [0, 32767].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from seriatim.clock import Clock
from seriatim.coordinator.schema import (
    TxnValue,
    decode_txn_key,
    decode_txn_value,
    encode_txn_key,
    encode_txn_value,
)
from seriatim.errors import ErrorCode, invariant

MAX_EPOCH = 32767  # Short.MAX_VALUE: an id whose epoch reaches it gets a new producer id
NO_DEADLINE_MS = 2**62
MARKER_RETRY_MS = 1000

TxnToken = int


class TxnState(IntEnum):
    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        return _NAMES[self]


_NAMES = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
STATE_BY_NAME = {name: state for state, name in _NAMES.items()}
_PREPARING = (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)
_COMPLETE = (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
_IDLE = (TxnState.EMPTY, *_COMPLETE)  # no transaction open: may expire


@dataclass(frozen=True, slots=True)
class TxnConfig:
    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms (7 days)


@dataclass(frozen=True, slots=True)
class TxnRecord:
    transactional_id: str
    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class MarkerRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class InitResult:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(slots=True)
class TxnOutput:
    records: list[TxnRecord] = field(default_factory=list)
    replies: list[tuple[TxnToken, Any]] = field(default_factory=list)
    markers: list[MarkerRequest] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TxnSummary:
    transactional_id: str
    state: TxnState
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    start_ms: int
    last_update_ms: int
    partitions: tuple[tuple[str, int], ...]


@dataclass(slots=True)
class TxnMeta:
    transactional_id: str
    stored: TxnValue
    last_epoch: int = -1
    markers_in_flight: bool = False

    @property
    def state(self) -> TxnState:
        return TxnState(self.stored.status)


class TransactionCoordinator:
    """Every transactional id of one broker. One owner (the driver) calls it."""

    def __init__(self, config: TxnConfig, clock: Clock,
                 allocate_producer_id: Callable[[], int]) -> None:
        self.config = config
        self.clock = clock
        self._allocate = allocate_producer_id
        self._txns: dict[str, TxnMeta] = {}

    # --- replay -------------------------------------------------------------------------------

    def replay(self, key: bytes, value: bytes | None) -> None:
        txn_id = decode_txn_key(key)
        if txn_id is None:
            return
        if value is None:
            self._txns.pop(txn_id, None)
            return
        v = decode_txn_value(value)
        meta = self._txns.get(txn_id)
        if meta is None:
            self._txns[txn_id] = TxnMeta(txn_id, v)
            return
        old = meta.stored
        if (v.producer_id, v.producer_epoch) != (old.producer_id, old.producer_epoch):
            meta.last_epoch = old.producer_epoch if v.producer_id == old.producer_id else -1
        meta.stored = v
        if v.status not in _PREPARING:
            meta.markers_in_flight = False

    def finish_loading(self) -> TxnOutput:
        """After the load: markers for every transaction that was preparing."""
        out = TxnOutput()
        for meta in self._txns.values():
            if meta.state in _PREPARING:
                self._request_markers(out, meta)
        return out

    # --- InitProducerId -------------------------------------------------------------------------

    def init_producer_id(self, token: TxnToken, transactional_id: str, timeout_ms: int,
                         producer_id: int = -1, producer_epoch: int = -1) -> TxnOutput:
        out = TxnOutput()
        now = self.clock.wall_ms()
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            out.replies.append((token, InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)))
            return out
        meta = self._txns.get(transactional_id)
        if meta is None:
            pid = self._allocate()
            out.records.append(self._record(transactional_id, TxnValue(
                pid, 0, timeout_ms, TxnState.EMPTY, (), now, -1)))
            out.replies.append((token, InitResult(ErrorCode.NONE, pid, 0)))
            return out
        cur = meta.stored
        if producer_id >= 0 and not (
                producer_id == cur.producer_id
                and producer_epoch in (cur.producer_epoch, meta.last_epoch)):
            out.replies.append((token, InitResult(ErrorCode.PRODUCER_FENCED)))
            return out
        if meta.state in _PREPARING:
            out.replies.append((token, InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)))
            return out
        if meta.state == TxnState.ONGOING:
            # Fence the old producer and abort its transaction; the client retries.
            self._abort_fenced(out, meta, now)
            out.replies.append((token, InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)))
            return out
        pid, epoch = cur.producer_id, cur.producer_epoch + 1
        if epoch >= MAX_EPOCH:
            pid, epoch = self._allocate(), 0
        out.records.append(self._record(transactional_id, TxnValue(
            pid, epoch, timeout_ms, TxnState.EMPTY, (), now, -1)))
        out.replies.append((token, InitResult(ErrorCode.NONE, pid, epoch)))
        return out

    # --- AddPartitionsToTxn / AddOffsetsToTxn ----------------------------------------------------

    def _check_producer(self, meta: TxnMeta | None, producer_id: int, epoch: int
                        ) -> ErrorCode | None:
        if meta is None or meta.stored.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if meta.stored.producer_epoch != epoch:
            return ErrorCode.PRODUCER_FENCED
        return None

    def add_partitions(self, token: TxnToken, transactional_id: str, producer_id: int,
                       epoch: int, partitions: Iterable[tuple[str, int]]) -> TxnOutput:
        out = TxnOutput()
        meta = self._txns.get(transactional_id)
        error = self._check_producer(meta, producer_id, epoch)
        if error is None and meta is not None:
            if meta.state in _PREPARING:
                error = ErrorCode.CONCURRENT_TRANSACTIONS
            elif meta.state not in (TxnState.EMPTY, TxnState.ONGOING, *_COMPLETE):
                error = ErrorCode.INVALID_TXN_STATE
        if error is not None or meta is None:
            out.replies.append((token, error))
            return out
        cur = meta.stored
        wanted = set(partitions)
        if meta.state == TxnState.ONGOING and wanted <= set(cur.partitions):
            out.replies.append((token, ErrorCode.NONE))
            return out
        now = self.clock.wall_ms()
        start = cur.start_ms if meta.state == TxnState.ONGOING else now
        out.records.append(self._record(transactional_id, TxnValue(
            cur.producer_id, cur.producer_epoch, cur.timeout_ms, TxnState.ONGOING,
            tuple(sorted(wanted | set(cur.partitions))), now, start)))
        out.replies.append((token, ErrorCode.NONE))
        return out

    def verify(self, transactional_id: str, producer_id: int, epoch: int, topic: str,
               partition: int) -> ErrorCode:
        """May this producer write to this partition now (the partition leader's check)?"""
        meta = self._txns.get(transactional_id)
        if meta is None or meta.stored.producer_id != producer_id:
            return ErrorCode.INVALID_TXN_STATE
        if epoch != meta.stored.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if meta.state != TxnState.ONGOING or (topic, partition) not in meta.stored.partitions:
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    # --- EndTxn ---------------------------------------------------------------------------------

    def end_txn(self, token: TxnToken, transactional_id: str, producer_id: int, epoch: int,
                commit: bool) -> TxnOutput:
        out = TxnOutput()
        meta = self._txns.get(transactional_id)
        error = self._check_producer(meta, producer_id, epoch)
        if error is not None or meta is None:
            out.replies.append((token, error))
            return out
        state = meta.state
        if state == TxnState.ONGOING:
            self._prepare(out, meta, commit, meta.stored.producer_epoch, self.clock.wall_ms())
            out.replies.append((token, ErrorCode.NONE))
        elif state == (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
            out.replies.append((token, ErrorCode.NONE))  # a retry of a finished EndTxn
        elif state == (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
            out.replies.append((token, ErrorCode.CONCURRENT_TRANSACTIONS))
        else:
            out.replies.append((token, ErrorCode.INVALID_TXN_STATE))
        return out

    def _prepare(self, out: TxnOutput, meta: TxnMeta, commit: bool, epoch: int,
                 now: int) -> None:
        cur = meta.stored
        status = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        value = TxnValue(cur.producer_id, epoch, cur.timeout_ms, status, cur.partitions, now,
                         cur.start_ms)
        out.records.append(self._record(meta.transactional_id, value))
        out.markers.append(MarkerRequest(meta.transactional_id, cur.producer_id, epoch, commit,
                                         cur.partitions))
        meta.markers_in_flight = True

    def _abort_fenced(self, out: TxnOutput, meta: TxnMeta, now: int) -> None:
        epoch = meta.stored.producer_epoch
        self._prepare(out, meta, False, epoch + 1 if epoch + 1 < MAX_EPOCH else epoch, now)

    def _request_markers(self, out: TxnOutput, meta: TxnMeta) -> None:
        cur = meta.stored
        out.markers.append(MarkerRequest(meta.transactional_id, cur.producer_id,
                                         cur.producer_epoch,
                                         meta.state == TxnState.PREPARE_COMMIT, cur.partitions))
        meta.markers_in_flight = True

    def markers_written(self, transactional_id: str, producer_id: int, epoch: int) -> TxnOutput:
        """Every marker of the prepared transaction is in its partition: complete it."""
        out = TxnOutput()
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state not in _PREPARING \
                or (meta.stored.producer_id, meta.stored.producer_epoch) != (producer_id, epoch):
            return out  # completed already (a repeated marker request)
        cur = meta.stored
        status = TxnState.COMPLETE_COMMIT if meta.state == TxnState.PREPARE_COMMIT \
            else TxnState.COMPLETE_ABORT
        out.records.append(self._record(transactional_id, TxnValue(
            cur.producer_id, cur.producer_epoch, cur.timeout_ms, status, (),
            self.clock.wall_ms(), cur.start_ms)))
        return out

    def markers_failed(self, transactional_id: str) -> None:
        """Writing markers failed (a partition is offline): :meth:`tick` retries."""
        meta = self._txns.get(transactional_id)
        if meta is not None:
            meta.markers_in_flight = False

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline_ms(self) -> int:
        deadline = NO_DEADLINE_MS
        for meta in self._txns.values():
            if meta.state == TxnState.ONGOING:
                deadline = min(deadline, meta.stored.start_ms + meta.stored.timeout_ms)
            elif meta.state in _PREPARING and not meta.markers_in_flight:
                deadline = min(deadline, meta.stored.last_update_ms + MARKER_RETRY_MS)
            elif meta.state in _IDLE:
                deadline = min(deadline,
                               meta.stored.last_update_ms + self.config.id_expiration_ms)
        return deadline

    def tick(self) -> TxnOutput:
        """Abort (and fence) transactions past transaction.timeout.ms; retry failed markers;
        forget transactional ids idle (no transaction open) for transactional.id.expiration.ms
        with a tombstone, as Kafka does: a producer using that id later starts afresh."""
        out = TxnOutput()
        now = self.clock.wall_ms()
        for meta in self._txns.values():
            cur = meta.stored
            if meta.state == TxnState.ONGOING and now >= cur.start_ms + cur.timeout_ms:
                self._abort_fenced(out, meta, now)
            elif meta.state in _PREPARING and not meta.markers_in_flight:
                self._request_markers(out, meta)
            elif meta.state in _IDLE and now >= cur.last_update_ms + self.config.id_expiration_ms:
                txn_id = meta.transactional_id
                out.records.append(TxnRecord(txn_id, encode_txn_key(txn_id), None))
        return out

    # --- queries --------------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TxnSummary | None:
        meta = self._txns.get(transactional_id)
        if meta is None:
            return None
        v = meta.stored
        return TxnSummary(transactional_id, meta.state, v.producer_id, v.producer_epoch,
                          v.timeout_ms, v.start_ms, v.last_update_ms, v.partitions)

    def list(self) -> list[TxnSummary]:
        out = []
        for txn_id in sorted(self._txns):
            summary = self.describe(txn_id)
            if summary is not None:
                out.append(summary)
        return out

    def check_invariants(self) -> None:
        for txn_id, meta in self._txns.items():
            v = meta.stored
            invariant(0 <= v.producer_epoch <= MAX_EPOCH, f"{txn_id}: epoch {v.producer_epoch}")
            if meta.state in (TxnState.ONGOING, *_PREPARING):
                invariant(bool(v.partitions) and v.start_ms >= 0,
                          f"{txn_id}: {meta.state.kafka_name} without partitions or start")
            elif meta.state in (TxnState.EMPTY, *_COMPLETE):
                invariant(not v.partitions, f"{txn_id}: {meta.state.kafka_name} with partitions")

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _record(transactional_id: str, value: TxnValue) -> TxnRecord:
        return TxnRecord(transactional_id, encode_txn_key(transactional_id),
                         encode_txn_value(value))
