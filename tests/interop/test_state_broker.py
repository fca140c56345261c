"""State machines fed by a topic partition on the in-process broker, through confluent-kafka,
and ``seriatim db`` against the broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import seriatim
from seriatim.cli.db import db
from seriatim.state import (
    KafkaSource,
    LogSource,
    Replica,
    ReplicaBehindLogError,
    SqliteMachine,
    envelope,
    state_hash,
)
from seriatim.testing import InProcessBroker

pytestmark = pytest.mark.interop

T0 = 1_700_000_000_000


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10).values():
        fut.result(timeout=30)


def produce(bootstrap: str, topic: str, values: list[tuple[bytes, int]]) -> list[int]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    offsets: list[int] = []
    errors: list[object] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())  # type: ignore[attr-defined]

    for value, ts in values:
        producer.produce(topic, value=value, partition=0, timestamp=ts, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert errors == []
    return sorted(offsets)


def statements(start: int, n: int) -> list[tuple[bytes, int]]:
    out = []
    for i in range(start, start + n):
        out.append((envelope.statement(
            "INSERT INTO t VALUES (?, 1, CURRENT_TIMESTAMP) "
            "ON CONFLICT (k) DO UPDATE SET n = n + 1, at = CURRENT_TIMESTAMP", [i % 13]),
            T0 + 1000 * i))
    return out


SCHEMA = (envelope.statement("CREATE TABLE t (k INTEGER PRIMARY KEY, n, at)"), T0)


def test_a_topic_replica_equals_an_embedded_log_replica(seriatim_broker: InProcessBroker,
                                                         tmp_path: Path) -> None:
    bootstrap = seriatim_broker.bootstrap
    create_topic(bootstrap, "ledger")
    values = [SCHEMA, *statements(0, 200), (envelope.statement("SELECT random()"), T0)]
    assert produce(bootstrap, "ledger", values) == list(range(len(values)))

    with seriatim.open(tmp_path / "log") as log:
        for value, ts in values:
            log.append(value, timestamp_ms=ts)
        with Replica(SqliteMachine(tmp_path / "local.sqlite"), LogSource(log)) as r:
            r.run(until_caught_up=True)

    remote = Replica(SqliteMachine(tmp_path / "remote.sqlite"),
                     KafkaSource(bootstrap, "ledger", max_batch_records=37))
    with remote:
        remote.start()
        remote.wait_caught_up(timeout_s=30)
        assert remote.applied_offset == len(values) and remote.lag == 0
        # Following live: more records arrive while the replica runs.
        more = statements(200, 50)
        produce(bootstrap, "ledger", more)
        values += more
        remote.wait_caught_up(timeout_s=30, min_offset=len(values))
        assert remote.applied_offset == len(values)
        assert [k for _, k, _ in remote.machine.errors()] == ["nondeterministic"]

    with seriatim.open(tmp_path / "log") as log:
        for value, ts in more:
            log.append(value, timestamp_ms=ts)
        with Replica(SqliteMachine(tmp_path / "local.sqlite"), LogSource(log)) as r:
            r.run(until_caught_up=True)
    assert state_hash(tmp_path / "remote.sqlite") == state_hash(tmp_path / "local.sqlite")

    # Restarting resumes from the stored offset (no group, no commits) and applies nothing twice.
    with Replica(SqliteMachine(tmp_path / "remote.sqlite"), KafkaSource(bootstrap, "ledger")) as r:
        r.run(until_caught_up=True)
        assert r.records_applied == 0 and r.applied_offset == len(values)


def test_deleted_records_need_a_snapshot(seriatim_broker: InProcessBroker,
                                         tmp_path: Path) -> None:
    from confluent_kafka import TopicPartition

    bootstrap = seriatim_broker.bootstrap
    create_topic(bootstrap, "short")
    produce(bootstrap, "short", [SCHEMA, *statements(0, 30)])
    with Replica(SqliteMachine(tmp_path / "a.sqlite"), KafkaSource(bootstrap, "short")) as r:
        r.run(until_caught_up=True)
        snap = r.machine.snapshot(tmp_path / "snaps")
    assert snap.offset == 31
    produce(bootstrap, "short", statements(30, 10))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.delete_records([TopicPartition("short", 0, snap.offset)]).values():
        fut.result(timeout=30)

    with Replica(SqliteMachine(tmp_path / "b.sqlite"), KafkaSource(bootstrap, "short")) as r, \
            pytest.raises(ReplicaBehindLogError):
        r.run(until_caught_up=True)
    with Replica(SqliteMachine(tmp_path / "c.sqlite"), KafkaSource(bootstrap, "short"),
                 snapshot_dir=tmp_path / "snaps") as r:
        r.run(until_caught_up=True)
        assert r.bootstrapped_from == snap and r.applied_offset == 41
    with Replica(SqliteMachine(tmp_path / "a.sqlite"), KafkaSource(bootstrap, "short")) as r:
        r.run(until_caught_up=True)
    assert state_hash(tmp_path / "a.sqlite") == state_hash(tmp_path / "c.sqlite")


def test_cli_exec_follow_hash_against_the_broker(seriatim_broker: InProcessBroker,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIATIM_BOOTSTRAP", seriatim_broker.bootstrap)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(db, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert run("exec", "cli", "CREATE TABLE t (k PRIMARY KEY, v)").strip() == "0"
    assert run("exec", "cli", "INSERT INTO t VALUES (?, ?)", "a", "1").strip() == "1"
    assert run("exec", "-b", seriatim_broker.bootstrap, "cli",
               "INSERT INTO t VALUES (?, ?)", "b", "2.5").strip() == "2"
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    out = run("follow", "cli", "--db", a, "--until-caught-up")
    assert "applied_offset=3 end_offset=3 lag=0" in out
    run("follow", "cli", "--db", b, "--until-caught-up", "--max-batch", "1")
    assert run("hash", a) == run("hash", b)
    assert run("hash", a).split()[1] == "offset=3"
    out = run("snapshot", "--db", a, "--out", str(tmp_path / "s"), "--keep", "1")
    assert "offset=3" in out

    result = runner.invoke(db, ["follow", "no-such-topic", "--db", str(tmp_path / "c.sqlite"),
                                "--until-caught-up"])
    assert result.exit_code == 1, result.output
