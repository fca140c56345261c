"""Runs of the same DML statement are applied with ``executemany`` (SqliteMachine._apply_run):
the outcome must be exactly the one-record-at-a-time outcome, whatever the batch boundaries,
the record timestamps, or failures inside a run."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from seriatim.records import Record
from seriatim.state import SqliteMachine, envelope, state_hash

T0 = 1_700_000_000_123
INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"


def recs(values: list[bytes], ts: list[int] | None = None) -> list[Record]:
    stamps = ts if ts is not None else [T0] * len(values)
    return [Record(i, stamps[i], None, v, ()) for i, v in enumerate(values)]


def one_by_one_and_batched(tmp_path: Path, records: list[Record]
                           ) -> tuple[SqliteMachine, SqliteMachine]:
    single = SqliteMachine(tmp_path / "single.sqlite")
    for rec in records:
        single.apply(rec)
    batched = SqliteMachine(tmp_path / "batched.sqlite")
    runs: list[int] = []
    apply_run = batched._apply_run

    def spy(sql: str, timestamps: list[int], params: list[Any]) -> bool:
        runs.append(len(timestamps))
        return apply_run(sql, timestamps, params)

    batched._apply_run = spy  # type: ignore[method-assign]
    batched.apply_batch(records)
    assert runs and max(runs) >= 5, "no run went through executemany"
    return single, batched


def table(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM t ORDER BY k").fetchall()
    finally:
        conn.close()


def test_each_record_of_a_run_gets_its_own_time(tmp_path: Path) -> None:
    schema = envelope.statement("CREATE TABLE t (k PRIMARY KEY, v, "
                                "at DEFAULT CURRENT_TIMESTAMP)")
    values = [schema] + [envelope.statement(INSERT, [i, i]) for i in range(50)]
    records = recs(values, [T0 + 1500 * i for i in range(len(values))])
    single, batched = one_by_one_and_batched(tmp_path, records)
    with single, batched:
        assert state_hash(single.path) == state_hash(batched.path)
        got = table(Path(batched.path))
    assert got[0][2] == "2023-11-14 22:13:21" and got[-1][2] == "2023-11-14 22:14:35"
    assert len({row[2] for row in got}) > 40  # the times differ record by record


def test_a_failure_inside_a_run_is_its_own_record_only(tmp_path: Path) -> None:
    values = [envelope.statement("CREATE TABLE t (k PRIMARY KEY, v NOT NULL)")]
    values += [envelope.statement(INSERT, [i, i]) for i in range(10)]
    values += [envelope.statement(INSERT, [3, "dup"])]            # constraint: sql error
    values += [envelope.statement(INSERT, [i, None]) for i in (20, 21)]  # NOT NULL
    values += [envelope.statement(INSERT, [i, 2**70]) for i in (22,)]    # cannot bind
    values += [envelope.statement(INSERT, [i, i]) for i in range(30, 40)]
    values += [envelope.statement("INSERT INTO t (k, v) VALUES (?, random())", [50])] * 2
    values += [envelope.statement(INSERT, [i, i]) for i in range(40, 45)]
    records = recs(values)
    single, batched = one_by_one_and_batched(tmp_path, records)
    with single, batched:
        assert state_hash(single.path) == state_hash(batched.path)
        kinds = [(o, k) for o, k, _ in batched.errors()]
        assert batched.applied_offset == len(values)
    assert kinds == [(11, "sql"), (12, "sql"), (13, "sql"), (14, "params"),
                     (25, "nondeterministic"), (26, "nondeterministic")]
    assert [k for k, _ in table(Path(batched.path))] == sorted(
        [*range(10), *range(30, 45)])


@pytest.mark.parametrize("cut", [1, 5, 17, 1000])
def test_runs_across_batch_boundaries_and_mixed_shapes(tmp_path: Path, cut: int) -> None:
    values = [envelope.statement("CREATE TABLE t (k PRIMARY KEY, v, n DEFAULT 0)")]
    for i in range(60):
        values.append(envelope.statement(INSERT, [i, f"v{i}"]))
        if i % 7 == 0:
            values.append(envelope.statement("UPDATE t SET n = n + 1 WHERE k <= :k", {"k": i}))
            values.append(envelope.statement("UPDATE t SET n = n + 1 WHERE k <= :k", {"k": i}))
        if i % 11 == 0:
            values.append(envelope.upsert("t", {"k": i}, {"v": "up"}))
            values.append(envelope.statement("DELETE FROM t WHERE k = ?", [i - 1]))
            values.append(envelope.statement("DELETE FROM t WHERE k = ?", [i - 2]))
    records = recs(values)
    single = SqliteMachine(tmp_path / "single.sqlite")
    for rec in records:
        single.apply(rec)
    cut_m = SqliteMachine(tmp_path / "cut.sqlite")
    for lo in range(0, len(records), cut):
        cut_m.apply_batch(records[lo:lo + cut])
    with single, cut_m:
        assert cut_m.errors() == []
        assert state_hash(single.path) == state_hash(cut_m.path)
