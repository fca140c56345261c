"""State from the log: how fast a replica applies single-row INSERTs from a log into SQLite,
against executing the same statements directly with sqlite3.

    python -m bench.state_bench [--quick] [--runs N]

* **seriatim**: the records (one ``{"v":1,"sql":"INSERT ...","params":[...]}`` envelope each,
  written by ``envelope.statement``) are already in an embedded log (``flush.policy=never``,
  written before the clock starts); timed is ``Replica(SqliteMachine(db),
  LogSource(log, max_batch_records=1000)).run(until_caught_up=True)``: reading the log
  (``PartitionLog.read``, CRC checks, records decoded into columns), decoding and validating
  every envelope, the determinism guard, and one SQLite transaction per 1 000 records (with
  the applied offset stored in it).
* **direct**: the same statements and parameters (already Python tuples: no log, no JSON)
  with ``conn.execute(sql, params)`` one by one, ``BEGIN IMMEDIATE`` ... ``COMMIT`` around
  every 1 000: what the application would do without the log. The target is judged against
  this one.
* **direct executemany**: the same, one ``executemany`` per 1 000 (the fastest way sqlite3
  offers; for reference).

Same SQLite settings for all: a fresh file, ``journal_mode=WAL``, ``synchronous=NORMAL`` (the
replica's fixed settings), the table ``t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)``,
rows ``(i, "item-<i>", 3*i)``. Opening and closing are outside the timed region. Below the
table, a breakdown of where a replica's time goes (each stage alone, same records): reading
(LogSource) plus applying (apply_batch, of which decoding and grouping) adds up to the replica
figure.

Target: the replica applies at >= 0.5x the direct rate.
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Measurement, Row, Settings, Suite, measure, scratch_dir, target

SQL = "INSERT INTO t (id, name, qty) VALUES (?, ?, ?)"
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)"
BATCH = 1000
TARGET = 0.5


def _params(n: int) -> list[tuple[int, str, int]]:
    return [(i, f"item-{i}", 3 * i) for i in range(n)]


def _direct_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)
    return conn


def _direct(root: Path, params: list[tuple[int, str, int]], many: bool) -> tuple[float, float]:
    with scratch_dir("state-direct") as d:
        conn = _direct_conn(d / "direct.sqlite")
        try:
            t0 = time.perf_counter()
            for lo in range(0, len(params), BATCH):
                conn.execute("BEGIN IMMEDIATE")
                if many:
                    conn.executemany(SQL, params[lo:lo + BATCH])
                else:
                    for p in params[lo:lo + BATCH]:
                        conn.execute(SQL, p)
                conn.execute("COMMIT")
            seconds = time.perf_counter() - t0
            (count,) = conn.execute("SELECT count(*) FROM t").fetchone()
        finally:
            conn.close()
    assert count == len(params)
    return len(params), seconds


def _write_log(log_dir: Path, params: list[tuple[int, str, int]]) -> int:
    import seriatim
    from seriatim.state import envelope

    with seriatim.open(log_dir, flush_policy="never") as log:
        log.append(envelope.statement(SCHEMA))
        values = [(None, envelope.statement(SQL, list(p))) for p in params]
        for lo in range(0, len(values), BATCH):
            log.append_many(values[lo:lo + BATCH])
        log.flush()
        return log.end_offset


def _replica(log_dir: Path, end: int) -> tuple[float, float]:
    import seriatim
    from seriatim.state import LogSource, Replica, SqliteMachine

    with scratch_dir("state-replica") as d, seriatim.open(log_dir, readonly=True,
                                                          create=False) as log:
        machine = SqliteMachine(d / "replica.sqlite")
        replica = Replica(machine, LogSource(log, max_batch_records=BATCH))
        try:
            t0 = time.perf_counter()
            replica.run(until_caught_up=True)
            seconds = time.perf_counter() - t0
            assert machine.applied_offset == end and not machine.errors()
        finally:
            machine.close()
    return end - 1, seconds  # the CREATE TABLE record is not an INSERT


def _batches(log_dir: Path, end: int) -> list[Any]:
    """The batches LogSource yields (RecordColumns), read once, outside any timed region."""
    import seriatim
    from seriatim.state import LogSource

    with seriatim.open(log_dir, readonly=True, create=False) as log:
        stop, out, n = threading.Event(), [], 0
        batches = LogSource(log, max_batch_records=BATCH).batches(0, stop)
        for batch in batches:
            out.append(batch)
            n += len(batch)
            if n >= end:
                break
        batches.close()
    return out


def _apply_only(batches: list[Any]) -> tuple[float, float]:
    """SqliteMachine.apply_batch of the LogSource batches, already read (no log I/O)."""
    from seriatim.state import SqliteMachine

    with scratch_dir("state-apply") as d:
        machine = SqliteMachine(d / "replica.sqlite")
        try:
            t0 = time.perf_counter()
            for batch in batches:
                machine.apply_batch(batch)
            seconds = time.perf_counter() - t0
        finally:
            machine.close()
    return sum(len(b) for b in batches), seconds


def _plan_only(batches: list[Any]) -> tuple[float, float]:
    """The decoding part of apply_batch: every envelope decoded (msgspec) and grouped into
    runs of one statement (SqliteMachine._plan, an internal step, timed alone here)."""
    from seriatim.state import SqliteMachine

    with scratch_dir("state-plan") as d:
        machine = SqliteMachine(d / "replica.sqlite")
        try:
            t0 = time.perf_counter()
            for batch in batches:
                machine._plan(batch.values)
            seconds = time.perf_counter() - t0
        finally:
            machine.close()
    return sum(len(b) for b in batches), seconds


def _read_only(log_dir: Path, end: int) -> tuple[float, float]:
    """LogSource batches, nothing applied."""
    import seriatim
    from seriatim.state import LogSource

    with seriatim.open(log_dir, readonly=True, create=False) as log:
        stop, n = threading.Event(), 0
        t0 = time.perf_counter()
        batches = LogSource(log, max_batch_records=BATCH).batches(0, stop)
        for batch in batches:
            n += len(batch)
            if n >= end:
                break
        seconds = time.perf_counter() - t0
        batches.close()
    return n, seconds


def _decode_reference(log_dir: Path) -> tuple[float, float]:
    """envelope.decode_reference (json + checks in Python), for comparison: not on the path."""
    import seriatim
    from seriatim.state.envelope import decode_reference

    with seriatim.open(log_dir, readonly=True, create=False) as log:
        values = [rec.value for rec in log.read(0)]
    t0 = time.perf_counter()
    for v in values:
        decode_reference(v)
    return len(values), time.perf_counter() - t0


def run(settings: Settings) -> Suite:
    suite = Suite("state", "State from the log: replica apply rate vs direct sqlite3",
                  "python -m bench.state_bench" + (" --quick" if settings.quick else ""))
    started = time.perf_counter()
    n = settings.scale(200_000, 30_000)
    params = _params(n)

    def m(label: str, case: Any, note: str = "") -> Measurement:
        return measure(label, "records/s", case, settings, note=note)

    with scratch_dir("state-log") as d:
        log_dir = d / "log"
        end = _write_log(log_dir, params)
        replica = m("seriatim Replica: log -> SQLite (1 000 per txn)",
                    lambda: _replica(log_dir, end))
        direct = m("sqlite3 execute() per statement", lambda: _direct(d, params, False),
                   "1 000 per txn")
        many = m("sqlite3 executemany()", lambda: _direct(d, params, True), "1 000 per txn")
        suite.rows.append(Row(f"{n:,} single-row INSERTs, WAL, synchronous=NORMAL",
                              replica, [direct, many]))
        batches = _batches(log_dir, end)
        read = m("LogSource: read + batch only", lambda: _read_only(log_dir, end))
        apply = m("SqliteMachine.apply_batch (batches in memory)",
                  lambda: _apply_only(batches))
        plan = m("  of which decode + group into runs", lambda: _plan_only(batches))
        reference = m("envelope.decode_reference (json; not on the path)",
                      lambda: _decode_reference(log_dir))
    suite.targets.append(target(f"replica >= {TARGET}x direct execute()", replica, TARGET,
                                base=direct))

    def us(x: Measurement) -> float:
        return 1e6 / x.median if x.ok and x.median else float("nan")

    rows = [(x.label, us(x)) for x in (replica, read, apply, plan)]
    rows.append(("  of which SQLite (executemany, SAVEPOINT, commit) and the rest",
                 us(apply) - us(plan)))
    rows.append(("read + apply (compare with the replica)", us(read) + us(apply)))
    rows += [(x.label, us(x)) for x in (reference, direct, many)]
    suite.extra_md += ["### Where a replica's time goes (microseconds per record, medians)", "",
                       "| stage | us/record |", "|---|---:|"]
    suite.extra_md += [f"| {label} | {value:.2f} |" for label, value in rows]
    suite.extra_md.append("")
    suite.notes += [
        "Timed: seriatim = Replica.run(until_caught_up) over a log written beforehand "
        "(reading, envelope decoding, guard, SQLite); direct = the same statements and "
        "parameters as Python tuples, no log and no JSON.",
        "SQLite settings, all rows: fresh file, journal_mode=WAL, synchronous=NORMAL, "
        f"one transaction per {BATCH:,} records.",
        "The replica applies runs of the same DML statement with executemany under one "
        "SAVEPOINT (a failure inside a run rolls the run back and re-applies it record by "
        "record); any other record runs in a SAVEPOINT of its own.",
        "Replica hot path: LogSource decodes log batches into columns (offsets, timestamps, "
        "values; no Record objects), envelopes are decoded and validated by msgspec "
        "(envelope.decode_plain; anything else by the json reference decoder, same result), "
        "and the statement checks are made once per distinct SQL text.",
    ]
    suite.seconds = time.perf_counter() - started
    return suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 30 s)")
    parser.add_argument("--runs", type=int, default=None, help="measured runs per figure")
    args = parser.parse_args(argv)
    suite = run(Settings.make(args.quick, args.runs))
    print()
    print(suite.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
