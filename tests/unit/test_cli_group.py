"""``seriatim group`` against an in-process broker: list, describe (lag), reset-offsets (dry
run, --execute, refused with members), delete."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from seriatim.cli.group import group
from seriatim.testing import InProcessBroker

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "events"


@pytest.fixture
def broker() -> Iterator[InProcessBroker]:
    with InProcessBroker() as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(10)
        producer = ck.Producer({"bootstrap.servers": b.bootstrap})
        for i in range(10):
            producer.produce(TOPIC, value=b"x", partition=i % 2)
        assert producer.flush(10) == 0
        yield b


def run(broker: InProcessBroker, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(group, ["-b", broker.bootstrap, *args])
    return result.exit_code, result.output


def commit(broker: InProcessBroker, group_id: str, offsets: dict[int, int]) -> None:
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_id})
    try:
        c.commit(
            offsets=[ck.TopicPartition(TOPIC, p, o) for p, o in offsets.items()],
            asynchronous=False,
        )
    finally:
        c.close()


def test_list_describe_reset_and_delete(broker: InProcessBroker) -> None:
    commit(broker, "billing", {0: 2, 1: 5})
    code, out = run(broker, "list")
    assert code == 0 and "billing" in out and "Empty" in out

    code, out = run(broker, "describe", "billing")
    assert code == 0, out
    lines = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith(TOPIC)}
    assert lines["0"][2:5] == ["2", "5", "3"]  # CURRENT-OFFSET, LOG-END-OFFSET, LAG
    assert lines["1"][2:5] == ["5", "5", "0"]

    code, out = run(broker, "reset-offsets", "billing", "--topic", TOPIC, "--to-earliest")
    assert code == 0 and "dry run" in out
    assert run(broker, "describe", "billing")[1].count(" 2 ") >= 1  # unchanged

    code, out = run(
        broker, "reset-offsets", "billing", "--topic", TOPIC, "--shift-by", "-1", "--execute"
    )
    assert code == 0, out
    code, out = run(broker, "describe", "billing")
    lines = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith(TOPIC)}
    assert lines["0"][2] == "1" and lines["1"][2] == "4"

    code, out = run(broker, "reset-offsets", "billing", "--topic", TOPIC, "--to-offset", "99",
                    "--execute")  # fmt: skip
    assert code == 0 and "reset 2 partition(s)" in out
    code, out = run(broker, "reset-offsets", "billing", "--topic", TOPIC, "--to-datetime",
                    "2000-01-01T00:00:00")  # fmt: skip
    assert code == 0 and "5" in out

    code, out = run(broker, "delete", "billing")
    assert code == 0, out
    assert "billing" not in run(broker, "list")[1]


def test_reset_is_refused_while_the_group_has_members(broker: InProcessBroker) -> None:
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "live",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})  # fmt: skip
    c.subscribe([TOPIC])
    try:
        deadline = time.monotonic() + 20
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.05)
        assert c.assignment()
        code, out = run(broker, "reset-offsets", "live", "--topic", TOPIC, "--to-latest",
                        "--execute")  # fmt: skip
        assert code != 0 and "active member" in out
        code, out = run(broker, "describe", "live")
        assert code == 0 and "Stable" in out and "ASSIGNMENT" in out
        code, out = run(broker, "delete", "live")
        assert code != 0
    finally:
        c.close()
