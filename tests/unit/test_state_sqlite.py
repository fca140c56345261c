"""The SQLite materializer: envelopes, the determinism guard, exactly-once offsets, hashes,
snapshots. Records are built directly (no log) unless the test is about the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import seriatim
from seriatim.errors import InvariantError
from seriatim.records import Record
from seriatim.state import (
    EnvelopeError,
    LogSource,
    Replica,
    ReplicaBehindLogError,
    SqliteMachine,
    UnsupportedEnvelopeError,
    envelope,
    latest_snapshot,
    list_snapshots,
    read_applied_offset,
    state_hash,
    write_snapshot,
)

T0 = 1_700_000_000_123  # 2023-11-14 22:13:20.123 UTC


def recs(values: list[bytes], start: int = 0, ts: int = T0) -> list[Record]:
    return [Record(start + i, ts + i, None, v, ()) for i, v in enumerate(values)]


def sql(text: str, *params: object) -> bytes:
    return envelope.statement(text, list(params))


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


SCHEMA = sql("CREATE TABLE t (k TEXT PRIMARY KEY, v, at)")


# --- envelope --------------------------------------------------------------------------------


def test_envelope_round_trips_values_and_ops() -> None:
    ops = envelope.decode(envelope.statement("SELECT ?, ?, ?, ?, ?, ?",
                                             [None, True, 7, 1.5, "é", b"\x00\xff"]))
    assert ops == [envelope.Statement("SELECT ?, ?, ?, ?, ?, ?", (None, 1, 7, 1.5, "é", b"\0\xff"))]
    up = envelope.decode(envelope.upsert("t", {"k": "a"}, {"v": 2}))
    assert up == [envelope.Upsert("t", (("k", "a"),), (("v", 2),))]
    group = envelope.decode(envelope.transaction([sql("SELECT 1"), envelope.delete("t", {"k": 1})]))
    assert group == [envelope.Statement("SELECT 1", (1,)[:0]), envelope.Delete("t", (("k", 1),))]
    named = envelope.decode(envelope.statement("SELECT :a", {"a": 1}))
    assert named == [envelope.Statement("SELECT :a", {"a": 1})]


@pytest.mark.parametrize("value, message", [
    (b"not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"sql": "SELECT 1"}', '"v"'),
    (b'{"v": 1, "sql": "SELECT 1", "extra": 1}', "unknown field"),
    (b'{"v": 1, "sql": "SELECT ?", "params": [[1]]}', "unsupported value"),
    (b'{"v": 1, "op": "upsert", "table": "t", "key": {}}', "at least one column"),
    (b'{"v": 1, "op": "merge"}', "needs"),
    (b'{"v": 1, "sql": "SELECT ?", "params": [NaN]}', "NaN"),
    (b'{"v": 1, "ops": []}', "non-empty"),
    (b"\xff", "UTF-8"),
    (None, "no value"),
])
def test_malformed_envelopes_are_envelope_errors(value: bytes | None, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        envelope.decode(value)


def test_a_newer_envelope_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedEnvelopeError, match="version 2"):
        envelope.decode(b'{"v": 2, "sql": "SELECT 1"}')


# --- applying, offsets ------------------------------------------------------------------------


def test_offset_is_stored_with_the_state_and_redelivery_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    batch = recs([sql("CREATE TABLE c (n INTEGER)"), sql("INSERT INTO c VALUES (0)")] +
                 [sql("UPDATE c SET n = n + 1")] * 5)
    with SqliteMachine(db) as m:
        assert m.applied_offset == 0
        m.apply_batch(batch[:4])
        assert m.applied_offset == 4
    with SqliteMachine(db) as m:
        assert m.applied_offset == 4
        m.apply_batch(batch)  # at-least-once: the first four come again
        m.apply_batch(batch[5:])
        assert m.applied_offset == 7
    assert rows(db, "SELECT n FROM c") == [(5,)]
    assert read_applied_offset(db) == 7
    assert rows(db, "SELECT log_time_ms FROM _seriatim_state") == [(T0 + 6,)]


def test_gaps_in_offsets_are_allowed_but_not_reordering(tmp_path: Path) -> None:
    with SqliteMachine(tmp_path / "r.sqlite") as m:
        m.apply_batch([Record(0, T0, None, SCHEMA, ()), Record(5, T0, None, sql("SELECT 1"), ())])
        assert m.applied_offset == 6
        with pytest.raises(InvariantError, match="out of order"):
            m.apply_batch([Record(9, T0, None, SCHEMA, ()), Record(7, T0, None, SCHEMA, ())])
        assert m.applied_offset == 6


def test_row_changes_upsert_and_delete(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with SqliteMachine(db) as m:
        m.apply_batch(recs([
            SCHEMA,
            envelope.upsert("t", {"k": "a"}, {"v": 1}),
            envelope.upsert("t", {"k": "a"}, {"v": 2}),
            envelope.upsert("t", {"k": "b"}, {"v": b"\x01"}),
            envelope.upsert("t", {"k": "c"}),
            envelope.upsert("t", {"k": "c"}),  # no columns: insert or nothing
            envelope.delete("t", {"k": "b"}),
        ]))
        assert m.errors() == []
    assert rows(db, "SELECT k, v FROM t ORDER BY k") == [("a", 2), ("c", None)]


def test_a_failing_record_is_rolled_back_whole_and_recorded(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with SqliteMachine(db) as m:
        m.apply_batch(recs([
            SCHEMA,
            envelope.transaction([sql("INSERT INTO t VALUES ('a', 1, 0)"),
                                  sql("INSERT INTO t VALUES ('a', 2, 0)")]),  # dup key
            sql("INSERT INTO t VALUES ('b', 1, 0)"),
            sql("INSERT INTO nosuch VALUES (1)"),
            sql("SELECT ?", 1, 2),
            sql("SELECT 1; SELECT 2"),
            sql("SELECT ?", 2**70),
            b"{}",
        ]))
        errors = m.errors()
        assert m.applied_offset == 8
    assert rows(db, "SELECT k FROM t") == [("b",)]  # offset 1 left nothing behind
    assert [(o, k) for o, k, _ in errors] == [
        (1, "sql"), (3, "sql"), (4, "sql"), (5, "sql"), (6, "params"), (7, "envelope")]
    assert "UNIQUE constraint failed" in errors[0][2]
    assert "no such table: nosuch" in errors[1][2]


def test_or_rollback_loses_only_its_own_record_whatever_the_batch(tmp_path: Path) -> None:
    log = recs([SCHEMA, sql("INSERT INTO t VALUES ('a', 1, 0)"),
                sql("INSERT INTO t VALUES ('b', 1, 0)"),
                sql("INSERT OR ROLLBACK INTO t VALUES ('a', 9, 0)"),
                sql("INSERT INTO t VALUES ('c', 1, 0)")])
    one, many = tmp_path / "one.sqlite", tmp_path / "many.sqlite"
    with SqliteMachine(one) as m:
        m.apply_batch(log)
        assert [o for o, _, _ in m.errors()] == [3]
    with SqliteMachine(many) as m:
        for r in log:
            m.apply(r)
    assert rows(one, "SELECT k, v FROM t ORDER BY k") == [("a", 1), ("b", 1), ("c", 1)]
    assert state_hash(one) == state_hash(many)


def test_a_newer_envelope_stops_the_replica_without_advancing(tmp_path: Path) -> None:
    with SqliteMachine(tmp_path / "r.sqlite") as m:
        with pytest.raises(UnsupportedEnvelopeError):
            m.apply_batch(recs([SCHEMA, b'{"v": 99, "sql": "SELECT 1"}']))
        assert m.applied_offset == 0  # the whole batch rolled back, SCHEMA included
        assert read_applied_offset(tmp_path / "r.sqlite") == 0


# --- determinism ----------------------------------------------------------------------------


NONDETERMINISTIC = [
    ("INSERT INTO t VALUES ('x', random(), 0)", "random()"),
    ("INSERT INTO t VALUES ('x', hex(randomblob(4)), 0)", "randomblob()"),
    ("INSERT INTO t VALUES ('x', changes(), 0)", "changes()"),
    ("INSERT INTO t VALUES ('x', total_changes(), 0)", "total_changes()"),
    ("INSERT INTO t VALUES ('x', last_insert_rowid(), 0)", "last_insert_rowid()"),
    ("INSERT INTO t VALUES ('x', sqlite_version(), 0)", "sqlite_version()"),
    ("INSERT INTO t VALUES ('x', datetime('now', 'localtime'), 0)", "localtime"),
    ("INSERT INTO t VALUES ('x', date('now', 'utc'), 0)", "'utc'"),
    ("BEGIN", "transaction control"),
    ("COMMIT", "transaction control"),
    ("SAVEPOINT s", "SAVEPOINT"),
    ("PRAGMA foreign_keys = ON", "PRAGMA"),
    ("ATTACH ':memory:' AS other", "ATTACH"),
    ("ANALYZE", "ANALYZE"),
    ("CREATE TEMP TABLE tmp (a)", "TEMP"),
    ("UPDATE _seriatim_state SET applied_offset = 0", "_seriatim_"),
    ("DELETE FROM _seriatim_errors", "_seriatim_"),
    ("DROP TABLE _seriatim_errors", "_seriatim_"),
    ("CREATE TRIGGER x AFTER UPDATE ON _seriatim_state BEGIN SELECT 1; END", "_seriatim_"),
    ("CREATE TABLE u (a DEFAULT (random()))", None),  # allowed: fails when the default runs
]


def test_nondeterministic_sql_is_rejected_identically_on_two_replicas(tmp_path: Path) -> None:
    log = recs([SCHEMA] + [sql(text) for text, _ in NONDETERMINISTIC] +
               [sql("INSERT INTO u DEFAULT VALUES"), sql("INSERT INTO t VALUES ('ok', 1, 0)")])
    reports = []
    for name in ("a", "b"):
        with SqliteMachine(tmp_path / f"{name}.sqlite") as m:
            m.apply_batch(log[:7])
            m.apply_batch(log[7:])
            reports.append(m.errors())
            assert m.applied_offset == len(log)
    assert reports[0] == reports[1]
    by_offset = {o: (k, msg) for o, k, msg in reports[0]}
    for i, (text, needle) in enumerate(NONDETERMINISTIC, start=1):
        if needle is None:
            assert i not in by_offset, text
            continue
        kind, message = by_offset[i]
        assert kind == "nondeterministic" and needle in message, (text, message)
    default_offset = len(NONDETERMINISTIC) + 1
    assert by_offset[default_offset][1] == "non-deterministic function random() is not allowed"
    assert rows(tmp_path / "a.sqlite", "SELECT k FROM t") == [("ok",)]
    assert state_hash(tmp_path / "a.sqlite") == state_hash(tmp_path / "b.sqlite")


def test_triggers_are_guarded_too(tmp_path: Path) -> None:
    with SqliteMachine(tmp_path / "r.sqlite") as m:
        m.apply_batch(recs([
            SCHEMA, sql("CREATE TABLE audit (n)"),
            sql("CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (random()); "
                "END"),
            sql("INSERT INTO t VALUES ('a', 1, 0)"),
        ]))
        assert [(o, k) for o, k, _ in m.errors()] == [(3, "nondeterministic")]


def test_time_comes_from_the_record_timestamp(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    stamps = [
        ("ts", "CURRENT_TIMESTAMP"), ("d", "CURRENT_DATE"), ("tm", "CURRENT_TIME"),
        ("dt", "datetime('now')"), ("dt0", "datetime()"), ("plus", "datetime('now', '+1 day')"),
        ("date", "date('now')"), ("jd", "julianday('now')"), ("ux", "unixepoch('now')"),
        ("sf", "strftime('%Y-%m-%dT%H:%M:%f', 'now')"), ("sf1", "strftime('%s')"),
        ("fixed", "datetime('2000-01-01', '+1 day')"),
    ]
    with SqliteMachine(db) as m:
        m.apply_batch([Record(0, T0, None, sql("CREATE TABLE n (name, v)"), ())])
        for i, (name, expr) in enumerate(stamps, start=1):
            m.apply(Record(i, T0, None, sql(f"INSERT INTO n VALUES (?, {expr})", name), ()))
        # A default of CURRENT_TIMESTAMP is bound to the record's time as well.
        m.apply(Record(50, T0 + 86_400_000, None,
                       sql("CREATE TABLE e (k, at DEFAULT CURRENT_TIMESTAMP)"), ()))
        m.apply(Record(51, T0 + 86_400_000, None, sql("INSERT INTO e (k) VALUES (1)"), ()))
        assert m.errors() == []
    got = dict(rows(db, "SELECT name, v FROM n"))
    assert got == {
        "ts": "2023-11-14 22:13:20", "d": "2023-11-14", "tm": "22:13:20",
        "dt": "2023-11-14 22:13:20", "dt0": "2023-11-14 22:13:20",
        "plus": "2023-11-15 22:13:20", "date": "2023-11-14",
        "jd": pytest.approx(2460263.425927, abs=1e-6), "ux": 1_700_000_000,
        "sf": "2023-11-14T22:13:20.123", "sf1": "1700000000", "fixed": "2000-01-02 00:00:00",
    }
    assert rows(db, "SELECT at FROM e") == [("2023-11-15 22:13:20",)]


# --- hash -------------------------------------------------------------------------------------


def test_state_hash_ignores_insertion_order_and_offset_but_not_content(tmp_path: Path) -> None:
    def build(name: str, values: list[bytes]) -> str:
        with SqliteMachine(tmp_path / name) as m:
            m.apply_batch(recs(values))
            return m.state_hash()

    tables = [SCHEMA, sql("CREATE TABLE bag (a, b)")]
    x1, x1_text = sql("INSERT INTO t VALUES ('x', 1, 0)"), sql("INSERT INTO t VALUES ('x', '1', 0)")
    y = sql("INSERT INTO t VALUES ('y', 2.5, x'00')")
    bag12, bag_q = sql("INSERT INTO bag VALUES (1, 2)"), sql("INSERT INTO bag VALUES (NULL, 'q')")
    a = build("a", [*tables, x1, y, bag12, bag12, bag_q])
    b = build("b", [*tables, bag_q, y, sql("SELECT 1"), bag12, x1, bag12])
    assert a == b
    assert build("c", [*tables, x1_text, y, bag12, bag12, bag_q]) != a  # TEXT '1' != INTEGER 1
    assert build("d", [*tables, x1, y, bag12, bag_q]) != a  # a bag row less


# --- snapshots --------------------------------------------------------------------------------


def _statements(n: int) -> list[bytes]:
    out = [SCHEMA, sql("CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER)"),
           sql("INSERT INTO c VALUES (1, 0)")]
    for i in range(n):
        out.append(sql("UPDATE c SET n = n + 1 WHERE id = 1"))
        out.append(envelope.upsert("t", {"k": f"k{i % 7}"}, {"v": i, "at": None}))
        if i % 5 == 4:
            out.append(sql("INSERT INTO t VALUES (?, ?, CURRENT_TIMESTAMP)", f"x{i}", i))
    return out


def test_snapshot_plus_tail_equals_full_replay_even_after_deleting_the_log(
        tmp_path: Path) -> None:
    values = _statements(60)
    with seriatim.open(tmp_path / "log", segment_bytes=2_000) as log:
        for v in values[:100]:
            log.append(v)
        full = SqliteMachine(tmp_path / "full.sqlite")
        with Replica(full, LogSource(log)) as r:
            r.run(until_caught_up=True)
            snap = full.snapshot(tmp_path / "snaps")
            assert snap.offset == 100 == full.applied_offset
            assert list_snapshots(tmp_path / "snaps") == [snap]
            for v in values[100:]:
                log.append(v)
            r.run(until_caught_up=True)
            expected = full.state_hash()

        assert log.delete_records_before(snap.offset) >= 1  # whole segments went
        assert log.start_offset > 0

        # Without a snapshot, a fresh replica cannot start: the records are gone.
        with Replica(SqliteMachine(tmp_path / "lost.sqlite"), LogSource(log)) as r, \
                pytest.raises(ReplicaBehindLogError, match="snapshot"):
            r.run(until_caught_up=True)

        fresh = SqliteMachine(tmp_path / "fresh.sqlite")
        with Replica(fresh, LogSource(log), snapshot_dir=tmp_path / "snaps") as r:
            r.run(until_caught_up=True)
            assert r.bootstrapped_from == snap
            assert fresh.applied_offset == log.end_offset == len(values)
            assert fresh.state_hash() == expected
        assert state_hash(tmp_path / "fresh.sqlite") == expected


def test_snapshot_from_outside_is_named_by_the_offset_inside_it(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with SqliteMachine(db) as m:
        m.apply_batch(recs(_statements(5)))
        offset = m.applied_offset
        snap = write_snapshot(db, tmp_path / "s")  # while the machine holds the file open
    assert snap.offset == offset and Path(snap.path).name == f"snapshot-{offset:020d}.sqlite"
    assert read_applied_offset(snap.path) == offset
    assert state_hash(snap.path) == state_hash(db)
    assert latest_snapshot(tmp_path / "s") == snap
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".tmp")]


def test_restore_replaces_a_lagging_replica(tmp_path: Path) -> None:
    values = recs(_statements(10))
    with SqliteMachine(tmp_path / "ahead.sqlite") as ahead:
        ahead.apply_batch(values)
        snap = ahead.snapshot(tmp_path / "s")
        want = ahead.state_hash()
    with SqliteMachine(tmp_path / "behind.sqlite") as behind:
        behind.apply_batch(values[:3])
        behind.restore(snap)
        assert behind.applied_offset == snap.offset
        assert behind.state_hash() == want
        behind.apply_batch(recs([sql("INSERT INTO t VALUES ('after', 1, 0)")], start=snap.offset))
        assert behind.applied_offset == snap.offset + 1


def test_internal_statements_are_never_reused_by_logged_ones(tmp_path: Path) -> None:
    # The statement cache is keyed by SQL text: a logged "COMMIT" must not reuse the
    # replica's own (unguarded) COMMIT, nor a logged VACUUM INTO its snapshot statement.
    with SqliteMachine(tmp_path / "r.sqlite") as m:
        m.apply_batch(recs([SCHEMA]))
        m.snapshot(tmp_path / "s")
        m.state_hash()
        m.apply_batch(recs([sql("COMMIT"), sql("BEGIN IMMEDIATE"), sql("ROLLBACK"),
                            sql("VACUUM INTO ?", str(tmp_path / "evil.sqlite"))], start=1))
        assert [k for _, k, _ in m.errors()][:3] == ["nondeterministic"] * 3
        assert m.errors()[3][0] == 4 and m.applied_offset == 5
    assert not (tmp_path / "evil.sqlite").exists()
