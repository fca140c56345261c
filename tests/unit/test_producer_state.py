"""Producer state: Kafka's sequence/epoch rules, duplicates, transactions, snapshots, recovery.

The hypothesis test drives :class:`ProducerStateManager` and a small model of Kafka's rules
(last 5 batches per producer, epochs, sequences) with the same random operations and compares
every verdict. The storage tests append through :class:`PartitionLog` and check that a retry
of an acknowledged batch is still recognised after a clean close and after an unclean stop
(the directory copied while the log is open, so no clean-shutdown marker exists).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seriatim.errors import ErrorCode
from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.producer_state import (
    INT32_MAX,
    Duplicate,
    ProducerStateError,
    ProducerStateManager,
    last_sequence,
    list_snapshots,
)

# --- pure rules -------------------------------------------------------------------------------


def test_sequences_wrap_from_int32_max_to_zero() -> None:
    assert last_sequence(INT32_MAX, 0) == INT32_MAX
    assert last_sequence(INT32_MAX, 1) == 0
    assert last_sequence(INT32_MAX - 1, 3) == 1
    ps = ProducerStateManager()
    ps.apply(1, 0, INT32_MAX - 1, 0, 1, 0, False)  # seqs 2^31-2, 2^31-1
    assert ps.check(1, 0, 0, 0, False) is None  # wraps to 0


def test_duplicate_of_one_of_the_last_five_batches_returns_its_offsets() -> None:
    ps = ProducerStateManager()
    for i in range(7):
        assert ps.check(9, 0, i * 2, 1, False) is None
        ps.apply(9, 0, i * 2, 100 + i * 2, 101 + i * 2, 0, False)
    assert ps.check(9, 0, 12, 1, False) == Duplicate(112, 113)
    assert ps.check(9, 0, 4, 1, False) == Duplicate(104, 105)
    with pytest.raises(ProducerStateError) as e:  # older than the last five
        ps.check(9, 0, 2, 1, False)
    assert e.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_gap_old_epoch_and_new_epoch_rules() -> None:
    ps = ProducerStateManager()
    ps.apply(5, 3, 0, 0, 0, 0, False)
    with pytest.raises(ProducerStateError) as e:
        ps.check(5, 3, 2, 0, False)
    assert e.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    with pytest.raises(ProducerStateError) as e:
        ps.check(5, 2, 1, 0, False)
    assert e.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    with pytest.raises(ProducerStateError) as e:
        ps.check(5, 4, 7, 0, False)
    assert e.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert ps.check(5, 4, 0, 0, False) is None
    assert ps.check(6, 0, 1234, 0, False) is None  # unknown producer: any sequence


def test_transaction_opens_on_first_batch_and_closes_on_marker() -> None:
    ps = ProducerStateManager()
    ps.apply(1, 0, 0, 10, 12, 0, True)
    ps.apply(2, 0, 0, 13, 13, 0, True)
    ps.apply(1, 0, 3, 14, 14, 0, True)
    assert ps.first_unstable_offset() == 10
    with pytest.raises(ProducerStateError) as e:
        ps.check(1, 0, 4, 0, False)
    assert e.value.code == ErrorCode.INVALID_TXN_STATE
    done = ps.apply_marker(1, 0, 0, False, 15, 0)
    assert done is not None and done.aborted and (done.first_offset, done.last_offset) == (10, 15)
    assert ps.first_unstable_offset() == 13
    assert ps.apply_marker(1, 0, 0, True, 16, 0) is None  # nothing open: a repeated marker
    ps.apply_marker(2, 0, 0, True, 17, 0)
    assert ps.first_unstable_offset() is None
    with pytest.raises(ProducerStateError) as e:
        ps.check_marker(2, 0, -5)
    assert e.value.code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    ps.check_invariants()


def test_snapshot_round_trip_and_damage_is_detected() -> None:
    ps = ProducerStateManager()
    for pid in range(3):
        for i in range(6):
            ps.apply(pid, pid, i, pid * 100 + i, pid * 100 + i, 1000 + i, pid == 2)
    data = ps.encode()
    back = ProducerStateManager.decode(data)
    assert back.producers == ps.producers and back.ongoing == ps.ongoing
    with pytest.raises(ValueError):
        ProducerStateManager.decode(data[:-1])
    broken = bytearray(data)
    broken[-3] ^= 1
    with pytest.raises(ValueError):
        ProducerStateManager.decode(bytes(broken))


# --- a model of Kafka's rules -----------------------------------------------------------------


class Model:
    def __init__(self) -> None:
        self.epoch: dict[int, int] = {}
        self.batches: dict[int, list[tuple[int, int, int]]] = {}  # (first, last seq, offset)

    def step(self, pid: int, epoch: int, seq: int, n: int, offset: int) -> object:
        if pid not in self.epoch:
            verdict: object = None
        elif epoch < self.epoch[pid]:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        elif epoch == self.epoch[pid]:
            last = seq + n - 1
            for first, lst, off in self.batches[pid]:
                if (first, lst) == (seq, last):
                    return ("dup", off)
            prev = self.batches[pid][-1][1] if self.batches[pid] else -1
            if seq != prev + 1:
                return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            verdict = None
        else:
            verdict = None if seq == 0 else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            if verdict is not None:
                return verdict
        if self.epoch.get(pid) != epoch:
            self.batches[pid] = []
        self.epoch[pid] = epoch
        self.batches[pid] = (self.batches[pid] + [(seq, seq + n - 1, offset)])[-5:]
        return verdict


ops = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-2, 3),
                         st.integers(1, 3)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_producer_state_matches_the_model(steps: list[tuple[int, int, int, int]]) -> None:
    ps, model = ProducerStateManager(), Model()
    next_seq: dict[tuple[int, int], int] = {}
    offset = 0
    for pid, epoch, delta, n in steps:
        # Mostly the next sequence, sometimes a retry (delta < 0) or a gap (delta > 1).
        base = next_seq.get((pid, epoch), 0)
        seq = max(0, base + (delta if delta != 1 else 0))
        expected = model.step(pid, epoch, seq, n, offset)
        try:
            got = ps.check(pid, epoch, seq, n - 1, False)
            verdict: object = ("dup", got.first_offset) if got is not None else None
        except ProducerStateError as exc:
            verdict = exc.code
        assert verdict == expected, (pid, epoch, seq, n)
        if verdict is None:
            ps.apply(pid, epoch, seq, offset, offset + n - 1, 0, False)
            next_seq[(pid, epoch)] = seq + n
            offset += n
        ps.check_invariants()
        assert ProducerStateManager.decode(ps.encode()).producers == ps.producers


# --- through the partition log ----------------------------------------------------------------


def _batch(pid: int, epoch: int, seq: int, n: int = 2, txn: bool = False) -> bytearray:
    return bytearray(build_batch([(b"k", b"v%d" % i) for i in range(n)], producer_id=pid,
                                 producer_epoch=epoch, base_sequence=seq, transactional=txn))


def _marker(pid: int, epoch: int, commit: bool) -> bytearray:
    from seriatim.broker.transactions import marker_batch

    return bytearray(marker_batch(pid, epoch, commit, 0, -1))


def test_log_answers_a_retry_with_the_original_offsets(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", LogConfig()) as log:
        first = log.append_batch(_batch(7, 0, 0))
        log.append_batch(_batch(8, 0, 0))
        again = log.append_batch(_batch(7, 0, 0))
        assert again.duplicate and (again.base_offset, again.last_offset) == (0, 1)
        assert log.end_offset == 4 and not first.duplicate


@pytest.mark.parametrize("clean", [True, False])
def test_retry_is_deduplicated_after_restart(tmp_path: Path, clean: bool) -> None:
    cfg = LogConfig(segment_bytes=300)  # rolls: snapshots at segment bases
    src = tmp_path / "p"
    log = PartitionLog.open(src, cfg)
    for i in range(10):
        log.append_batch(_batch(7, 0, i * 2))
    log.append_batch(_batch(9, 0, 0, txn=True))
    if clean:
        log.close()
        path = src
    else:  # an unclean stop: copy the open log (no clean-shutdown marker)
        path = tmp_path / "copy"
        shutil.copytree(src, path, ignore=shutil.ignore_patterns(".lock"))
        log.close()
    assert list_snapshots(str(path))
    with PartitionLog.open(path, cfg) as log2:
        assert not log2.recovery_report.clean_shutdown or clean
        dup = log2.append_batch(_batch(7, 0, 18))
        assert dup.duplicate and dup.base_offset == 18
        assert log2.first_unstable_offset() == 20
        with pytest.raises(ProducerStateError):
            log2.append_batch(_batch(7, 0, 30))
        log2.append_batch(_marker(9, 0, False))
        assert log2.first_unstable_offset() is None
        assert [(t.producer_id, t.first_offset) for t in log2.aborted_transactions(0, 99)] \
            == [(9, 20)]
    with PartitionLog.open(path, cfg) as log3:  # the abort survives in the .txnindex
        assert [(t.producer_id, t.first_offset) for t in log3.aborted_transactions(0, 99)] \
            == [(9, 20)]


def test_truncation_rebuilds_producer_state_and_the_abort_index(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=250)) as log:
        log.append_batch(_batch(1, 0, 0, txn=True))
        log.append_batch(_marker(1, 0, False))
        log.append_batch(_batch(1, 0, 2, txn=True))
        assert log.first_unstable_offset() == 3
        log.truncate_to(3)
        assert log.first_unstable_offset() is None
        assert len(log.aborted_transactions(0, 99)) == 1
        log.truncate_to(2)
        assert log.aborted_transactions(0, 99) == []
        assert log.first_unstable_offset() == 0
        assert log.append_batch(_batch(1, 0, 0, txn=True)).duplicate


# --- expiry (producer.id.expiration.ms, KIP-854) ----------------------------------------------


def test_expire_forgets_idle_producers_but_never_an_open_transaction() -> None:
    ps = ProducerStateManager()
    ps.apply(1, 0, 0, 0, 1, 1_000, False)  # idle since 1 000
    ps.apply(2, 0, 0, 2, 3, 5_000, False)  # recent
    ps.apply(3, 0, 0, 4, 5, 1_000, True)  # idle, but its transaction is still open
    assert ps.expire(6_000, 3_000) == [1]
    assert sorted(ps.producers) == [2, 3]
    ps.check_invariants()
    assert ps.expire(8_000, 3_000) == [2]  # idle for exactly the expiration
    assert ps.first_unstable_offset() == 4  # the open transaction still holds the LSO


def test_an_expired_producer_is_forgotten_by_the_log_and_its_snapshot(tmp_path: Path) -> None:
    day = 86_400_000
    cfg = LogConfig()
    path = tmp_path / "p"
    with PartitionLog.open(path, cfg) as log:
        batch = bytearray(build_batch([(b"k", b"v")], producer_id=7, producer_epoch=0,
                                      base_sequence=0, timestamp_ms=1_000))
        log.append_batch(bytearray(batch))
        assert log.append_batch(bytearray(batch)).duplicate  # known: a retry is recognised
        assert log.expire_producers(1_000 + day - 1, day) == 0
        assert log.expire_producers(1_000 + day, day) == 1
        assert log.producer_entries() == []
        again = log.append_batch(bytearray(batch))  # unknown now: accepted as new data
        assert not again.duplicate and again.base_offset == 1
        assert log.expire_producers(1_000 + day, day) == 1  # that batch is as old
    with PartitionLog.open(path, cfg) as log:  # the clean-shutdown snapshot kept none
        assert log.producer_entries() == []
