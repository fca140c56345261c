"""The pure transaction coordinator: state machine, fencing, timeouts, replay = restart.

A tiny harness plays the driver: it replays every record of an output at once (as the broker
does), records the marker requests, and reports them written (completing the transaction).
"""

from __future__ import annotations

import itertools
from typing import Any

from seriatim.coordinator.schema import (
    TxnValue,
    decode_txn_value,
    encode_txn_key,
    encode_txn_value,
)
from seriatim.coordinator.transactions import (
    InitResult,
    MarkerRequest,
    TransactionCoordinator,
    TxnConfig,
    TxnOutput,
    TxnState,
)
from seriatim.errors import ErrorCode
from seriatim.testing import ManualClock


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.ids = itertools.count(1000)
        self.core = TransactionCoordinator(TxnConfig(max_timeout_ms=60_000), self.clock,
                                           lambda: next(self.ids))
        self.log: list[tuple[bytes, bytes | None]] = []
        self.markers: list[MarkerRequest] = []
        self.tokens = itertools.count()
        self.write_markers = True

    def run(self, out: TxnOutput) -> list[Any]:
        for r in out.records:
            self.log.append((r.key, r.value))
            self.core.replay(r.key, r.value)
        for m in out.markers:
            self.markers.append(m)
            if self.write_markers:
                self.run(self.core.markers_written(m.transactional_id, m.producer_id,
                                                   m.producer_epoch))
        self.core.check_invariants()
        return [result for _, result in out.replies]

    def call(self, method: Any, *args: Any) -> Any:
        (result,) = self.run(method(next(self.tokens), *args))
        return result

    def init(self, txn_id: str = "t", timeout_ms: int = 10_000, pid: int = -1,
             epoch: int = -1) -> InitResult:
        result: InitResult = self.call(self.core.init_producer_id, txn_id, timeout_ms, pid,
                                       epoch)
        return result

    def state(self, txn_id: str = "t") -> TxnState:
        s = self.core.describe(txn_id)
        assert s is not None
        return s.state


def test_value_schema_round_trips() -> None:
    v = TxnValue(7, 3, 60_000, 1, (("a", 0), ("a", 2), ("b", 1)), 123, 100)
    assert decode_txn_value(encode_txn_value(v)) == v


def test_commit_cycle_writes_markers_to_every_partition() -> None:
    h = Harness()
    r = h.init()
    assert (r.error, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 1000, 0)
    assert h.state() == TxnState.EMPTY
    parts = [("a", 0), ("b", 1)]
    assert h.call(h.core.add_partitions, "t", 1000, 0, parts) == ErrorCode.NONE
    assert h.state() == TxnState.ONGOING
    n = len(h.log)
    assert h.call(h.core.add_partitions, "t", 1000, 0, parts[:1]) == ErrorCode.NONE
    assert len(h.log) == n  # already in: nothing written
    assert h.core.verify("t", 1000, 0, "a", 0) == ErrorCode.NONE
    assert h.core.verify("t", 1000, 0, "c", 0) == ErrorCode.INVALID_TXN_STATE
    assert h.call(h.core.end_txn, "t", 1000, 0, True) == ErrorCode.NONE
    assert h.markers[-1] == MarkerRequest("t", 1000, 0, True, tuple(parts))
    assert h.state() == TxnState.COMPLETE_COMMIT
    assert h.call(h.core.end_txn, "t", 1000, 0, True) == ErrorCode.NONE  # a retry
    assert h.call(h.core.end_txn, "t", 1000, 0, False) == ErrorCode.INVALID_TXN_STATE
    assert h.core.verify("t", 1000, 0, "a", 0) == ErrorCode.INVALID_TXN_STATE


def test_errors_for_unknown_ids_wrong_producers_and_concurrent_end() -> None:
    h = Harness()
    assert h.call(h.core.add_partitions, "nope", 1, 0, [("a", 0)]) \
        == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert h.init(timeout_ms=0).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert h.init(timeout_ms=61_000).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    h.init()
    assert h.call(h.core.add_partitions, "t", 999, 0, [("a", 0)]) \
        == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert h.call(h.core.end_txn, "t", 1000, 0, True) == ErrorCode.INVALID_TXN_STATE  # Empty
    h.call(h.core.add_partitions, "t", 1000, 0, [("a", 0)])
    h.write_markers = False
    assert h.call(h.core.end_txn, "t", 1000, 0, False) == ErrorCode.NONE
    assert h.state() == TxnState.PREPARE_ABORT
    assert h.call(h.core.add_partitions, "t", 1000, 0, [("a", 0)]) \
        == ErrorCode.CONCURRENT_TRANSACTIONS
    assert h.call(h.core.end_txn, "t", 1000, 0, False) == ErrorCode.CONCURRENT_TRANSACTIONS
    assert h.init().error == ErrorCode.CONCURRENT_TRANSACTIONS


def test_a_new_producer_fences_the_zombie_and_aborts_its_transaction() -> None:
    h = Harness()
    h.init()
    h.call(h.core.add_partitions, "t", 1000, 0, [("a", 0)])
    assert h.init().error == ErrorCode.CONCURRENT_TRANSACTIONS  # aborting the old one
    assert h.markers[-1] == MarkerRequest("t", 1000, 1, False, (("a", 0),))
    assert h.state() == TxnState.COMPLETE_ABORT
    r = h.init()
    assert (r.error, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 1000, 2)
    # The zombie (epoch 0) is fenced everywhere.
    assert h.call(h.core.add_partitions, "t", 1000, 0, [("a", 0)]) == ErrorCode.PRODUCER_FENCED
    assert h.call(h.core.end_txn, "t", 1000, 0, True) == ErrorCode.PRODUCER_FENCED
    assert h.core.verify("t", 1000, 0, "a", 0) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert h.init(pid=1000, epoch=0).error == ErrorCode.PRODUCER_FENCED


def test_timeout_aborts_with_a_bumped_epoch() -> None:
    h = Harness()
    h.init(timeout_ms=5_000)
    h.call(h.core.add_partitions, "t", 1000, 0, [("a", 0)])
    assert h.core.next_deadline_ms() == h.clock.wall_ms() + 5_000
    h.clock.advance(4_999)
    assert not h.run(h.core.tick()) and h.state() == TxnState.ONGOING
    h.clock.advance(1)
    h.run(h.core.tick())
    assert h.state() == TxnState.COMPLETE_ABORT
    assert h.markers[-1] == MarkerRequest("t", 1000, 1, False, (("a", 0),))
    assert h.call(h.core.end_txn, "t", 1000, 0, True) == ErrorCode.PRODUCER_FENCED
    # KIP-588: the timed-out producer may re-initialise with its own (old) epoch.
    r = h.init(pid=1000, epoch=0)
    assert (r.error, r.producer_epoch) == (ErrorCode.NONE, 2)


def test_epoch_exhaustion_gives_a_new_producer_id() -> None:
    h = Harness()
    h.init()
    for _ in range(32766):
        r = h.init()
    assert (r.producer_id, r.producer_epoch) == (1000, 32766)
    r = h.init()
    assert (r.producer_id, r.producer_epoch) == (1001, 0)


def test_replay_restores_state_and_finishes_interrupted_commits() -> None:
    h = Harness()
    h.init("a")
    h.init("b")
    h.call(h.core.add_partitions, "a", 1000, 0, [("x", 0)])
    h.call(h.core.add_partitions, "b", 1001, 0, [("y", 1)])
    h.write_markers = False
    h.call(h.core.end_txn, "b", 1001, 0, True)  # crash before the markers
    fresh = TransactionCoordinator(TxnConfig(), h.clock, lambda: 5000)
    for key, value in h.log:
        fresh.replay(key, value)
    assert fresh.list() == h.core.list()
    out = fresh.finish_loading()
    assert out.markers == [MarkerRequest("b", 1001, 0, True, (("y", 1),))]
    assert fresh.describe("a") is not None
    summary = fresh.describe("a")
    assert summary is not None and summary.state == TxnState.ONGOING


def test_idle_transactional_ids_expire_with_a_tombstone() -> None:
    h = Harness()
    week = TxnConfig().id_expiration_ms
    h.init("idle")
    h.init("busy")
    t0 = h.clock.wall_ms()
    assert h.core.next_deadline_ms() == t0 + week  # the idle ones' expiry
    h.clock.advance(week - 1)
    # "busy" opens a transaction just in time: an ongoing transaction never expires.
    assert h.call(h.core.add_partitions, "busy", 1001, 0, [("a", 0)]) == ErrorCode.NONE
    h.run(h.core.tick())
    assert h.core.describe("idle") is not None
    h.clock.advance(1)
    h.run(h.core.tick())
    assert h.core.describe("idle") is None
    assert h.log[-1] == (encode_txn_key("idle"), None)  # replayed from the log, it is gone too
    assert h.state("busy") == TxnState.ONGOING
    # A producer using the expired id later starts afresh, with a new producer id.
    r = h.init("idle")
    assert r.error == ErrorCode.NONE and r.producer_id not in (1000, 1001)
