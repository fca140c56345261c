"""The replica runner over an embedded log: live following, lag, clean stop, errors surface."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import seriatim
from seriatim.records import Record
from seriatim.state import (
    LogSource,
    Progress,
    Replica,
    Snapshot,
    SqliteMachine,
    StateMachine,
    UnsupportedEnvelopeError,
    envelope,
    list_snapshots,
    state_hash,
)


class ListMachine:
    """The smallest StateMachine: a list of values, the offset beside it (in memory)."""

    def __init__(self) -> None:
        self.values: list[bytes | None] = []
        self._applied = 0

    @property
    def applied_offset(self) -> int:
        return self._applied

    def apply(self, record: Record) -> None:
        self.apply_batch([record])

    def apply_batch(self, records: Sequence[Record]) -> None:
        for r in records:
            if r.offset >= self._applied:
                self.values.append(r.value)
                self._applied = r.offset + 1

    def snapshot(self, out_dir: str | os.PathLike[str]) -> Snapshot:
        raise NotImplementedError

    def restore(self, snapshot: Snapshot) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_any_state_machine_can_be_driven(tmp_path: Path) -> None:
    machine = ListMachine()
    assert isinstance(machine, StateMachine)
    with SqliteMachine(tmp_path / "x.sqlite") as sqlite_machine:
        assert isinstance(sqlite_machine, StateMachine)
    with seriatim.open(tmp_path / "log") as log:
        log.append_many([(None, b"%d" % i) for i in range(10)])
        with Replica(machine, LogSource(log, max_batch_records=3)) as r:
            r.run(until_caught_up=True)
            assert r.lag == 0 and r.records_applied == 10
    assert machine.values == [b"%d" % i for i in range(10)]


def test_two_replicas_following_a_live_log_end_identical(tmp_path: Path) -> None:
    progress: list[Progress] = []
    with seriatim.open(tmp_path / "log", flush_policy="never") as log:
        log.append(envelope.statement("CREATE TABLE c (k INTEGER PRIMARY KEY, n, at)"))
        replicas = [
            Replica(SqliteMachine(tmp_path / f"r{i}.sqlite"),
                    LogSource(log, max_batch_records=1 + 40 * i, poll_interval_s=0.005),
                    on_progress=progress.append if i == 0 else None).start()
            for i in range(2)
        ]
        try:
            for i in range(300):
                log.append(envelope.statement(
                    "INSERT INTO c VALUES (?, 1, CURRENT_TIMESTAMP) "
                    "ON CONFLICT (k) DO UPDATE SET n = n + 1, at = CURRENT_TIMESTAMP", [i % 17]))
                if i % 50 == 0:
                    time.sleep(0.01)
            for r in replicas:
                r.wait_caught_up(timeout_s=20)
                assert r.lag == 0 and r.applied_offset == log.end_offset == 301
        finally:
            for r in replicas:
                r.stop()
                r.machine.close()
    assert not any(r.running for r in replicas)
    h0, h1 = state_hash(tmp_path / "r0.sqlite"), state_hash(tmp_path / "r1.sqlite")
    assert h0 == h1
    assert progress and progress[-1].lag == 0 and progress[-1].applied_offset == 301
    assert all(p.lag >= 0 for p in progress)


def test_an_idle_replica_stops_promptly(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log") as log, \
            Replica(SqliteMachine(tmp_path / "r.sqlite"), LogSource(log)) as r:
        r.start()
        time.sleep(0.1)
        assert r.running
        t0 = time.monotonic()
        r.stop()
        assert time.monotonic() - t0 < 2.0
        assert not r.running and r.error is None


def test_a_readonly_follower_sees_the_writer(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log") as writer:
        writer.append(envelope.statement("CREATE TABLE t (a)"))
        reader = seriatim.open(tmp_path / "log", readonly=True, create=False)
        with Replica(SqliteMachine(tmp_path / "r.sqlite"),
                     LogSource(reader, owns=True, poll_interval_s=0.005)) as r:
            r.start()
            for i in range(20):
                writer.append(envelope.statement("INSERT INTO t VALUES (?)", [i]))
            deadline = time.monotonic() + 10
            while r.applied_offset < 21 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert r.applied_offset == 21


def test_an_error_in_the_thread_is_raised_by_stop(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log") as log:
        log.append(envelope.statement("CREATE TABLE t (a)"))
        log.append(b'{"v": 7, "sql": "SELECT 1"}')
        r = Replica(SqliteMachine(tmp_path / "r.sqlite"), LogSource(log, max_batch_records=1))
        with r:
            r.start()
            deadline = time.monotonic() + 10
            while r.running and time.monotonic() < deadline:
                time.sleep(0.01)
            assert isinstance(r.error, UnsupportedEnvelopeError)
            assert r.applied_offset == 1  # stopped at the record it cannot apply
            with pytest.raises(UnsupportedEnvelopeError):
                r.stop()


def test_periodic_snapshots_are_written_and_pruned(tmp_path: Path) -> None:
    snaps: list[Snapshot] = []
    with seriatim.open(tmp_path / "log") as log:
        log.append(envelope.statement("CREATE TABLE t (a)"))
        log.append_many([(None, envelope.statement("INSERT INTO t VALUES (?)", [i]))
                         for i in range(99)])
        with Replica(SqliteMachine(tmp_path / "r.sqlite"),
                     LogSource(log, max_batch_records=10), snapshot_dir=tmp_path / "s",
                     snapshot_every_records=25, keep_snapshots=2,
                     on_progress=lambda p: snaps.extend([p.snapshot] if p.snapshot else [])
                     ) as r:
            r.run(until_caught_up=True)
    assert [s.offset for s in snaps] == [30, 60, 90]
    assert [s.offset for s in list_snapshots(tmp_path / "s")] == [60, 90]


def test_stop_from_another_thread_while_run_blocks(tmp_path: Path) -> None:
    stop = threading.Event()
    with seriatim.open(tmp_path / "log") as log, \
            Replica(SqliteMachine(tmp_path / "r.sqlite"), LogSource(log)) as r:
        timer = threading.Timer(0.1, stop.set)
        timer.start()
        r.run(stop)  # returns once the event is set
        timer.join()
        assert stop.is_set()
