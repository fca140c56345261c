"""``seriatim topic``, ``offsets`` and ``cluster`` against the in-process broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

import seriatim.testing
from seriatim.cli.main import cli
from seriatim.testing import InProcessBroker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def broker() -> Iterator[InProcessBroker]:
    with seriatim.testing.broker(num_partitions=2) as b:
        yield b


def run(broker: InProcessBroker, *args: str, code: int = 0, input: bytes | None = None) -> Result:
    result = CliRunner().invoke(cli, ["-b", broker.bootstrap, *args], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_create_list_describe_delete(broker: InProcessBroker) -> None:
    topic = name()
    out = run(broker, "topic", "create", topic, "-p", "3", "-r", "1",
              "-c", "retention.ms=3600000", "-c", "cleanup.policy=compact")
    assert f"created topic {topic}" in out.stderr
    listed = json.loads(run(broker, "--format", "json", "topic", "list").stdout)
    assert {"name": topic, "partitions": 3, "replication_factor": 1} in listed
    assert topic in run(broker, "topic", "list").stdout

    keyless = run(broker, "produce", topic, input=b"a\n", code=1)
    assert "INVALID_RECORD" in keyless.output and "need keys" in keyless.output
    run(broker, "produce", topic, "-p", "1", "-k", "key", input=b"a\nb\n")
    described = json.loads(run(broker, "topic", "describe", topic, "--format", "json").stdout)
    assert len(described) == 1
    d = described[0]
    assert d["name"] == topic and d["partition_count"] == 3 and d["replication_factor"] == 1
    assert [(p["partition"], p["low"], p["high"], p["messages"]) for p in d["partitions"]] == \
        [(0, 0, 0, 0), (1, 0, 2, 2), (2, 0, 0, 0)]
    assert all(p["leader"] == 1 and p["isr"] == [1] for p in d["partitions"])
    assert {k: v["value"] for k, v in d["configs"].items()} == \
        {"retention.ms": "3600000", "cleanup.policy": "compact"}
    text = run(broker, "topic", "describe", topic).stdout
    assert "retention.ms" in text and "HIGH" in text and "LEADER" in text

    run(broker, "topic", "delete", topic)
    assert topic not in run(broker, "topic", "list").stdout
    gone = run(broker, "topic", "describe", topic, code=1)
    assert f"unknown topic '{topic}'" in gone.output


def test_create_defaults_and_if_not_exists(broker: InProcessBroker) -> None:
    topic = name()
    run(broker, "topic", "create", topic)  # the broker's num.partitions
    described = json.loads(run(broker, "--format", "json", "topic", "describe", topic).stdout)
    assert described[0]["partition_count"] == 2 and described[0]["configs"] == {}
    again = run(broker, "topic", "create", topic, code=1)
    assert "TOPIC_ALREADY_EXISTS" in again.output
    ok = run(broker, "topic", "create", topic, "--if-not-exists")
    assert "already exists" in ok.stderr
    run(broker, "topic", "delete", name(), code=1)
    run(broker, "topic", "delete", name(), "--if-exists")


def test_alter_config_and_add_partitions(broker: InProcessBroker) -> None:
    topic = name()
    run(broker, "topic", "create", topic, "-p", "1")
    run(broker, "topic", "alter-config", topic, "--set", "retention.ms=1000",
        "--set", "cleanup.policy=compact")
    run(broker, "topic", "alter-config", topic, "--delete", "cleanup.policy")
    d = json.loads(run(broker, "--format", "json", "topic", "describe", topic).stdout)[0]
    assert {k: v["value"] for k, v in d["configs"].items()} == {"retention.ms": "1000"}
    everything = json.loads(run(broker, "--format", "json", "topic", "describe", topic,
                                "--all-configs").stdout)[0]["configs"]
    assert everything["cleanup.policy"]["value"] == "delete"
    assert everything["cleanup.policy"]["is_default"] is True
    run(broker, "topic", "alter-config", topic, code=2)  # nothing to do: usage error

    run(broker, "topic", "add-partitions", topic, "--add", "2")
    run(broker, "topic", "add-partitions", topic, "--total", "4")
    d = json.loads(run(broker, "--format", "json", "topic", "describe", topic).stdout)[0]
    assert d["partition_count"] == 4
    fewer = run(broker, "topic", "add-partitions", topic, "--total", "2", code=1)
    assert "already has 4 partitions" in fewer.output
    run(broker, "topic", "add-partitions", topic, code=2)


def test_offsets_and_time(broker: InProcessBroker) -> None:
    topic = name()
    run(broker, "topic", "create", topic, "-p", "2")
    lines = [json.dumps({"partition": 0, "timestamp": ts, "value": str(ts)})
             for ts in (1000, 2000, 3000)]
    run(broker, "produce", topic, "--format", "json", input="\n".join(lines).encode())
    data = json.loads(run(broker, "--format", "json", "offsets", topic, "--at", "@2000").stdout)
    assert data["partitions"] == [
        {"partition": 0, "earliest": 0, "latest": 3, "messages": 3,
         "at": {"offset": 1, "timestamp": 2000}},
        {"partition": 1, "earliest": 0, "latest": 0, "messages": 0,
         "at": {"offset": 0, "timestamp": None}},
    ]
    late = json.loads(run(broker, "offsets", topic, "--at", "@9999", "--format", "json",
                          "-p", "0").stdout)
    assert late["partitions"][0]["at"] == {"offset": 3, "timestamp": None}  # the end
    assert "EARLIEST" in run(broker, "offsets", topic).stdout
    run(broker, "offsets", topic, "--at", "tomorrow", code=2)
    run(broker, "offsets", name(), code=1)


def test_cluster_info(broker: InProcessBroker) -> None:
    data = json.loads(run(broker, "--format", "json", "cluster", "info").stdout)
    assert data["cluster_id"] and data["controller"] == 1
    assert data["brokers"] == [{"id": 1, "host": "127.0.0.1", "port": broker.port,
                                "rack": None}]
    assert data["topics"] >= 0 and data["bootstrap"] == broker.bootstrap
    text = run(broker, "cluster").stdout  # `cluster` alone is `cluster info`
    assert data["cluster_id"] in text and str(broker.port) in text
