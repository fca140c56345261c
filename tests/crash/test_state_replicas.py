"""Replicas in separate processes, killed at random, end identical to each other and to a model.

What this proves
----------------
A seeded random workload (inserts, per-row counter increments, bulk increments, upserts,
deletes, runs of the same INSERT, and a few non-deterministic statements) is appended to one
log by the test process while *replica processes* (``seriatim db follow``, each with its own
SQLite file and a random ``--max-batch``) follow it. The test SIGKILLs replicas at random
moments and restarts them, while the writer keeps appending. Then:

* **atomic, exactly once, at every kill**: after each SIGKILL the dead replica's file is read
  and must equal the model *at the offset stored in the file* (rows, per-row counters, the
  global counter, the recorded errors). A statement applied twice would show as a counter one
  too high; a torn batch as a state that matches no offset;
* **identical at the end**: once the writer stops, every replica catches up (then stops
  cleanly on SIGTERM) and its ``state_hash`` equals the others' and the reference's;
* **the model**: two of them. A *pure-Python dict model* of the workload (what each op does to
  ``{k: (v, n, at)}``, the counter, and which offsets are refused and why), written without
  SQLite; and a *reference replay*: a fresh in-process replica that applied the whole log in
  one pass. The reference's contents equal the dict model, and every replica's hash equals the
  reference's;
* **non-deterministic SQL is refused identically**: ``random()``, ``changes()`` and the
  ``'localtime'`` modifier, alone or inside an otherwise valid transaction, are recorded as
  ``nondeterministic`` at the same offsets on every replica, with nothing applied;
* **snapshot + tail = full replay**: a snapshot taken mid-run from a live replica file, then
  the log below it deleted; a replica without the snapshot is refused, and a fourth replica
  bootstrapped from the snapshot plus the remaining tail reaches the same hash;
* **over the broker**: the same shape with the in-process broker, a real Kafka client
  (confluent-kafka producer; replicas use the ``KafkaSource``), ``DeleteRecords`` below the
  snapshot.

Reproduce a run with ``SEED=<n> pytest tests/crash/test_state_replicas.py`` (the seed is
printed; pytest shows it on failure).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import seriatim
from seriatim.state import (
    KafkaSource,
    LogSource,
    Replica,
    SqliteMachine,
    envelope,
    hash_with_offset,
    read_applied_offset,
    write_snapshot,
)
from seriatim.testing import InProcessBroker

T0 = 1_700_000_000_000
KEYS = 60
SEED = int(os.environ.get("SEED") or random.SystemRandom().randrange(2**32))

# --- the model -----------------------------------------------------------------------------------

Row = tuple[str, int, str | None]  # (v, n, at)


@dataclass
class State:
    """What a replica holds at an offset: the dict model's view, or one read from a file."""

    applied: int
    rows: dict[int, Row] | None = None  # None: the schema record is not applied yet
    total: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Op:
    value: bytes
    # What the record does to the model: returns the error kind if the replica must refuse
    # it (then the model is left unchanged), None if it applies.
    effect: Callable[[State, int, int], str | None]
    label: str


def sql_time(ts_ms: int) -> str:
    """CURRENT_TIMESTAMP / datetime('now') of a record with this timestamp (UTC)."""
    return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ts_ms)).strftime(
        "%Y-%m-%d %H:%M:%S")


def _rows(state: State) -> dict[int, Row]:
    assert state.rows is not None
    return state.rows


def schema_op() -> Op:
    def effect(s: State, _offset: int, _ts: int) -> None:
        s.rows, s.total = {}, 0

    return Op(envelope.transaction([
        envelope.statement("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL, "
                           "n INTEGER NOT NULL, at TEXT)"),
        envelope.statement("CREATE TABLE total (id INTEGER PRIMARY KEY, c INTEGER NOT NULL)"),
        envelope.statement("INSERT INTO total VALUES (0, 0)"),
    ]), effect, "schema")


def insert_op(k: int, v: str) -> Op:
    def effect(s: State, _offset: int, ts: int) -> str | None:
        rows = _rows(s)
        if k in rows:
            return "sql"  # UNIQUE constraint failed
        rows[k] = (v, 0, sql_time(ts))
        return None

    return Op(envelope.statement(
        "INSERT INTO kv (k, v, n, at) VALUES (?, ?, 0, CURRENT_TIMESTAMP)", [k, v]),
        effect, "insert")


def bump_op(k: int, v: str) -> Op:
    """Increment the row's counter and the global one, all or nothing."""
    def effect(s: State, _offset: int, ts: int) -> None:
        rows = _rows(s)
        s.total += 1
        if k in rows:
            rows[k] = (v, rows[k][1] + 1, sql_time(ts))

    return Op(envelope.transaction([
        envelope.statement("UPDATE kv SET n = n + 1, v = ?, at = datetime('now') WHERE k = ?",
                           [v, k]),
        envelope.statement("UPDATE total SET c = c + 1"),
    ]), effect, "bump")


def bump_many_op(r: int) -> Op:
    def effect(s: State, _offset: int, _ts: int) -> None:
        rows = _rows(s)
        for k, (v, n, at) in rows.items():
            if k % 5 == r:
                rows[k] = (v, n + 1, at)

    return Op(envelope.statement("UPDATE kv SET n = n + 1 WHERE k % 5 = :r", {"r": r}),
              effect, "bump_many")


def upsert_op(k: int, v: str) -> Op:
    def effect(s: State, _offset: int, _ts: int) -> None:
        _rows(s)[k] = (v, 0, None)

    return Op(envelope.upsert("kv", {"k": k}, {"v": v, "n": 0, "at": None}), effect, "upsert")


def delete_op(k: int, as_sql: bool) -> Op:
    def effect(s: State, _offset: int, _ts: int) -> None:
        _rows(s).pop(k, None)

    value = (envelope.statement("DELETE FROM kv WHERE k = ?", [k]) if as_sql
             else envelope.delete("kv", {"k": k}))
    return Op(value, effect, "delete")


def nondeterministic_op(rng: random.Random, offset: int) -> Op:
    def effect(_s: State, _offset: int, _ts: int) -> str:
        return "nondeterministic"

    k = rng.randrange(KEYS)
    value = rng.choice([
        envelope.statement("UPDATE kv SET v = random() WHERE k = ?", [k]),
        envelope.statement("UPDATE total SET c = c + (random() % 2)"),
        # evaluated for every record (VALUES), on a key that never exists: fails at run time
        envelope.statement("INSERT INTO kv (k, v, n, at) VALUES "
                           "(?, 'x', 0, datetime('now', 'localtime'))", [1000 + offset]),
        # a valid increment, then a forbidden function: the whole record is refused
        envelope.transaction([envelope.statement("UPDATE total SET c = c + 1"),
                              envelope.statement("UPDATE kv SET n = n + changes()")]),
    ])
    return Op(value, effect, "nondeterministic")


def workload(rng: random.Random, n: int) -> list[Op]:
    ops = [schema_op()]
    while len(ops) < n:
        offset = len(ops)
        k, v = rng.randrange(KEYS), f"v{offset}"
        roll = rng.random()
        if roll < 0.05:  # a burst of the same INSERT (a run for executemany)
            ops += [insert_op(rng.randrange(KEYS), f"v{offset}-{i}")
                    for i in range(rng.randint(5, 25))]
        elif roll < 0.35:
            ops.append(insert_op(k, v))
        elif roll < 0.65:
            ops.append(bump_op(k, v))
        elif roll < 0.72:
            ops.append(bump_many_op(rng.randrange(5)))
        elif roll < 0.80:
            ops.append(upsert_op(k, v))
        elif roll < 0.96:
            ops.append(delete_op(k, as_sql=rng.random() < 0.5))
        else:
            ops.append(nondeterministic_op(rng, offset))
    return ops[:n]


def timestamps(rng: random.Random, n: int) -> list[int]:
    ts, out = T0, []
    for _ in range(n):
        ts += rng.choice([0, 0, 1, 7, 999, 1000, 61_000])  # same ms, ms apart, s, minutes
        out.append(ts)
    return out


def model_at(ops: list[Op], stamps: list[int], offset: int) -> State:
    """The dict model after applying the records below ``offset``."""
    s = State(applied=offset)
    for i in range(offset):
        before = (None if s.rows is None else dict(s.rows), s.total)
        kind = ops[i].effect(s, i, stamps[i])
        if kind is not None:
            s.rows, s.total = before  # a refused record changes nothing...
            s.errors.append((i, kind))  # ...but is recorded
    return s


def read_state(db: Path) -> State | None:
    """A replica file's contents in one read transaction (None if it does not exist yet)."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        if "_seriatim_state" not in tables:
            return None  # killed while creating the file
        applied = conn.execute("SELECT applied_offset FROM _seriatim_state").fetchone()[0]
        errors = [(int(o), str(k)) for o, k in conn.execute(
            "SELECT offset, kind FROM _seriatim_errors ORDER BY offset")]
        if "kv" not in tables:
            return State(int(applied), None, 0, errors)
        rows = {int(k): (str(v), int(n), at) for k, v, n, at in conn.execute(
            "SELECT k, v, n, at FROM kv")}
        (total,) = conn.execute("SELECT c FROM total").fetchone()
        conn.execute("COMMIT")
        return State(int(applied), rows, int(total), errors)
    finally:
        conn.close()


# --- replica processes ---------------------------------------------------------------------------


class ReplicaProcess:
    """One ``seriatim db follow`` child; its output goes to a file (no pipe to fill up)."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], db: Path, out: Path
                 ) -> None:
        self.name, self._argv, self.db, self.out = name, argv, db, out
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.lifetime = 0.0
        self.dead_since = 0.0
        self.dead_for = 0.0
        self.starts = 0
        self.kills = 0
        self.last_offset = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, rng: random.Random) -> None:
        assert not self.alive
        with open(self.out, "ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self._argv(rng.choice([1, 3, 17, 100, 1000])),
                                         stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        self.started_at = time.monotonic()
        self.lifetime = rng.uniform(0.2, 1.2)

    def kill(self, rng: random.Random) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL, self.output()
        self.kills += 1
        self.dead_since = time.monotonic()
        self.dead_for = rng.uniform(0.0, 0.4)

    def terminate(self) -> int:
        """SIGTERM (a clean stop in ``db follow``); the exit code."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""


@contextmanager
def replica_processes(replicas: list[ReplicaProcess]) -> Iterator[list[ReplicaProcess]]:
    try:
        yield replicas
    finally:
        for r in replicas:
            r.close()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seriatim.cli.main", *args]


def check_against_model(r: ReplicaProcess, ops: list[Op], stamps: list[int]) -> int:
    """The file of a (dead or live) replica equals the model at the offset it stores."""
    got = read_state(r.db)
    if got is None:
        return 0
    assert got.applied >= r.last_offset, f"{r.name} went back from {r.last_offset}"
    want = model_at(ops, stamps, got.applied)
    assert got == want, f"{r.name} at offset {got.applied} differs from the model (seed {SEED})"
    r.last_offset = got.applied
    return got.applied


def chaos(rng: random.Random, replicas: list[ReplicaProcess], ops: list[Op], stamps: list[int],
          append: Callable[[int, int], None], on_half: Callable[[], None], *,
          pause_s: float = 0.05) -> int:
    """Append every op in random chunks while killing and restarting replicas at random;
    return how many kills landed while the victim was neither empty nor caught up."""
    for r in replicas:
        r.start(rng)
    written, half_done, mid_way = 0, False, 0
    want_kills = 2 * len(replicas)
    overtime = time.monotonic() + 60  # the ops ran out before enough kills: keep killing
    while written < len(ops) or (sum(r.kills for r in replicas) < want_kills
                                 and time.monotonic() < overtime):
        if written < len(ops):
            chunk = min(rng.randint(1, 25), len(ops) - written)
            append(written, written + chunk)
            written += chunk
        if not half_done and written >= len(ops) // 2:
            on_half()
            half_done = True
        now = time.monotonic()
        for r in replicas:
            if r.alive and now - r.started_at > r.lifetime:
                r.kill(rng)
                applied = check_against_model(r, ops, stamps)
                if 0 < applied < written:
                    mid_way += 1
            elif not r.alive and now - r.dead_since > r.dead_for:
                r.start(rng)
        time.sleep(rng.uniform(0.0, pause_s))
    print(f"kills: {[r.kills for r in replicas]}, {mid_way} mid-way")
    return mid_way


def finish(replicas: list[ReplicaProcess], end: int, rng: random.Random,
           timeout_s: float = 30.0) -> None:
    """Restart the dead, wait until every replica has applied the whole log, stop them with
    SIGTERM (a clean stop: exit 0, last line at lag 0)."""
    for r in replicas:
        if not r.alive:
            r.start(rng)
    deadline = time.monotonic() + timeout_s
    for r in replicas:
        while not r.db.exists() or read_applied_offset(r.db) < end:
            assert r.alive, f"{r.name} exited:\n{r.output()[-2000:]}"
            assert time.monotonic() < deadline, f"{r.name} did not catch up (seed {SEED})"
            time.sleep(0.05)
    for r in replicas:
        assert r.terminate() == 0, r.output()[-2000:]
        progress = [ln for ln in r.output().splitlines() if ln.startswith("applied_offset=")]
        assert progress[-1] == f"applied_offset={end} end_offset={end} lag=0", progress[-1]


def check_final(replicas: list[ReplicaProcess], reference: Path, ops: list[Op],
                stamps: list[int], mid_way: int) -> None:
    end = len(ops)
    model = model_at(ops, stamps, end)
    assert read_state(reference) == model, f"the reference differs from the model (seed {SEED})"
    ref_hash = hash_with_offset(reference)
    assert ref_hash[1] == end
    for r in replicas:
        assert hash_with_offset(r.db) == ref_hash, f"{r.name} diverged (seed {SEED})"
        assert read_state(r.db) == model
    # The counters prove nothing was applied twice (or skipped): compare them explicitly.
    bumps = sum(1 for op in ops if op.label == "bump")
    assert model.total == bumps and bumps > 50
    assert sum(n for _, n, _ in (model.rows or {}).values()) > 0
    refused = [o for o, kind in model.errors if kind == "nondeterministic"]
    assert len(refused) >= 3, "too few non-deterministic statements to prove anything"
    assert any(kind == "sql" for _, kind in model.errors)
    assert sum(r.kills for r in replicas) >= 2 * len(replicas), "too few kills"
    assert mid_way >= len(replicas), f"only {mid_way} kills landed mid-way"


# --- embedded log --------------------------------------------------------------------------------


def test_replica_processes_killed_at_random_converge_on_an_embedded_log(tmp_path: Path) -> None:
    print(f"SEED={SEED}")
    rng = random.Random(SEED)
    n = 2500
    ops, stamps = workload(rng, n), timestamps(rng, n)
    log_dir, snaps = tmp_path / "log", tmp_path / "snaps"

    def argv_for(db: Path) -> Callable[[int], list[str]]:
        return lambda batch: cli("db", "follow", "--log", str(log_dir), "--db", str(db),
                                 "--max-batch", str(batch), "--progress-interval", "0.2")

    with seriatim.open(log_dir, flush_policy="never", segment_bytes=64 * 1024) as log:
        replicas = [ReplicaProcess(f"replica-{i}", argv_for(tmp_path / f"r{i}.sqlite"),
                                   tmp_path / f"r{i}.sqlite", tmp_path / f"r{i}.out")
                    for i in range(3)]
        snapshot_at: list[int] = []

        def append(lo: int, hi: int) -> None:
            assert log.append_many([(None, ops[i].value, (), stamps[i]) for i in range(lo, hi)
                                    ]) == lo

        def take_snapshot() -> None:  # from outside, while replica 0 may be applying
            snapshot_at.append(write_snapshot(replicas[0].db, snaps).offset)

        with replica_processes(replicas):
            mid_way = chaos(rng, replicas, ops, stamps, append, take_snapshot)
            assert log.end_offset == n
            finish(replicas, n, rng)

        # The reference: one fresh in-process replica that replays the whole log.
        reference = tmp_path / "reference.sqlite"
        with Replica(SqliteMachine(reference), LogSource(log)) as ref:
            ref.run(until_caught_up=True)
        check_final(replicas, reference, ops, stamps, mid_way)

        # Snapshot + tail: delete the log below the snapshot, then bootstrap a new replica.
        (snap_offset,) = snapshot_at
        assert 0 < snap_offset < n
        log.delete_records_before(snap_offset)
        assert log.start_offset == snap_offset

    fresh = subprocess.run(cli("db", "follow", "--log", str(log_dir), "--db",
                               str(tmp_path / "fresh.sqlite"), "--until-caught-up"),
                           capture_output=True, text=True, timeout=60, check=False)
    assert fresh.returncode == 1 and "bootstrap from a snapshot" in fresh.stderr, fresh.stderr
    fourth = tmp_path / "r3.sqlite"
    boot = subprocess.run(cli("db", "follow", "--log", str(log_dir), "--db", str(fourth),
                              "--snapshots", str(snaps), "--until-caught-up"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert f"snapshot-{snap_offset:020d}.sqlite" in boot.stdout and "lag=0" in boot.stdout
    assert hash_with_offset(fourth) == hash_with_offset(reference)


# --- the broker ----------------------------------------------------------------------------------


@pytest.mark.interop
def test_replica_processes_killed_at_random_converge_over_the_broker(
        seriatim_broker: InProcessBroker, tmp_path: Path) -> None:
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    print(f"SEED={SEED}")
    rng = random.Random(SEED + 1)
    n = 1200
    ops, stamps = workload(rng, n), timestamps(rng, n)
    bootstrap, topic, snaps = seriatim_broker.bootstrap, "state", tmp_path / "snaps"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10).values():
        fut.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})
    delivered: list[int] = []
    failed: list[object] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failed.append(err)
        else:
            delivered.append(msg.offset())  # type: ignore[attr-defined]

    def append(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            producer.produce(topic, value=ops[i].value, partition=0, timestamp=stamps[i],
                             on_delivery=on_delivery)
        assert producer.flush(30) == 0 and failed == []
        assert sorted(delivered) == list(range(hi)), "offsets are not the op indexes"

    def argv_for(db: Path) -> Callable[[int], list[str]]:
        # -b before the subcommand: the shared client options reach `db follow`.
        return lambda batch: cli("-b", bootstrap, "db", "follow", topic, "--db", str(db),
                                 "--max-batch", str(batch), "--progress-interval", "0.2")

    replicas = [ReplicaProcess(f"replica-{i}", argv_for(tmp_path / f"r{i}.sqlite"),
                               tmp_path / f"r{i}.sqlite", tmp_path / f"r{i}.out")
                for i in range(2)]
    snapshot_at: list[int] = []

    def take_snapshot() -> None:
        snapshot_at.append(write_snapshot(replicas[1].db, snaps).offset)

    with replica_processes(replicas):
        mid_way = chaos(rng, replicas, ops, stamps, append, take_snapshot)
        finish(replicas, n, rng)

    reference = tmp_path / "reference.sqlite"
    with Replica(SqliteMachine(reference), KafkaSource(bootstrap, topic)) as ref:
        ref.run(until_caught_up=True)
    check_final(replicas, reference, ops, stamps, mid_way)

    (snap_offset,) = snapshot_at
    assert 0 < snap_offset < n
    for fut in admin.delete_records([TopicPartition(topic, 0, snap_offset)]).values():
        fut.result(timeout=30)
    third = tmp_path / "r2.sqlite"
    boot = subprocess.run(cli("-b", bootstrap, "db", "follow", topic, "--db", str(third),
                              "--snapshots", str(snaps), "--until-caught-up"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert f"snapshot-{snap_offset:020d}.sqlite" in boot.stdout and "lag=0" in boot.stdout
    assert hash_with_offset(third) == hash_with_offset(reference)
