"""Admin APIs with raw requests over a socket: every served version, and the corners no client
exposes (OffsetForLeaderEpoch, endpoint types, duplicates, null values, AlterConfigs'
replace semantics).

Requests are built with kio's request entities (``seriatim.protocol.make`` fills the defaults)
and written with ``kio.serial.entity_writer``; responses are read with ``entity_reader``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

import seriatim.testing
from seriatim.broker.handlers import load_all
from seriatim.errors import ErrorCode
from seriatim.records import build_batch
from seriatim.testing import InProcessBroker
from seriatim.testing.wire import RawConnection as Wire

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def broker() -> Iterator[InProcessBroker]:
    with seriatim.testing.broker() as b:
        yield b


@pytest.fixture
def wire(broker: InProcessBroker) -> Iterator[Wire]:
    with Wire(broker.bootstrap) as w:
        yield w


def create(wire: Wire, name: str, partitions: int = 1, **configs: str) -> None:
    resp = wire.request(
        19,
        7,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": [
                        {"name": k.replace("_", "."), "value": v} for k, v in configs.items()
                    ],
                }
            ],
            "timeout_ms": 1000,
        },
    )
    assert resp.topics[0].error_code == 0, resp


def produce(wire: Wire, topic: str, n: int, partition: int = 0) -> int:
    batch = build_batch([(None, b"x%d" % i) for i in range(n)])
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}],
    }
    resp = wire.request(0, 9, body)
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == 0, part
    return int(part.base_offset)


def topic_overrides(broker: InProcessBroker, topic: str) -> dict[str, str]:
    async def get() -> dict[str, str]:
        return broker.app.state.manager.topic_overrides(topic)  # type: ignore[attr-defined,no-any-return]

    return broker.call(get())


# --- every served version answers -------------------------------------------------------------


def _body(key: int, version: int, topic: str) -> dict[str, Any]:
    if key == 19:
        return {
            "topics": [
                {
                    "name": f"{topic}-new",
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "configs": [{"name": "retention.ms", "value": "100000"}],
                }
            ],
            "timeout_ms": 1000,
        }
    if key == 20:
        if version >= 6:
            return {"topics": [{"name": topic}]}
        return {"topic_names": [topic]}
    if key == 37:
        return {"topics": [{"name": topic, "count": 2, "assignments": None}], "timeout_ms": 1000}
    if key == 21:
        return {
            "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": 1}]}],
            "timeout_ms": 1000,
        }
    if key == 32:
        body: dict[str, Any] = {
            "resources": [
                {"resource_type": 2, "resource_name": topic, "configuration_keys": None},
                {"resource_type": 4, "resource_name": "1", "configuration_keys": None},
            ],
            "include_synonyms": True,
        }
        if version >= 3:
            body["include_documentation"] = True
        return body
    if key == 44:
        configs = [{"name": "retention.ms", "config_operation": 0, "value": "5000"}]
        return {"resources": [{"resource_type": 2, "resource_name": topic, "configs": configs}]}
    if key == 33:
        configs = [{"name": "retention.ms", "value": "5000"}]
        return {"resources": [{"resource_type": 2, "resource_name": topic, "configs": configs}]}
    if key == 60:
        return {}
    if key == 35:
        return {"topics": None}
    if key == 23:
        part = {"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}
        body = {"topics": [{"topic": topic, "partitions": [part]}]}
        if version >= 3:
            body["replica_id"] = -1
        return body
    raise AssertionError(key)


ADMIN_KEYS = (19, 20, 21, 23, 32, 33, 35, 37, 44, 60)
VERSIONS = [
    (key, v)
    for key in ADMIN_KEYS
    for v in range(load_all().entry(key).min_version, load_all().entry(key).max_version + 1)  # type: ignore[union-attr]
]


def _error_codes(entity: Any) -> list[int]:
    """Every error_code anywhere in a response entity."""
    codes: list[int] = []
    if dataclasses.is_dataclass(entity):
        for f in dataclasses.fields(entity):
            value = getattr(entity, f.name)
            if f.name == "error_code":
                codes.append(int(value.value))
            else:
                codes.extend(_error_codes(value))
    elif isinstance(entity, tuple):
        for item in entity:
            codes.extend(_error_codes(item))
    return codes


@pytest.mark.parametrize(("key", "version"), VERSIONS)
def test_every_served_version_answers(wire: Wire, key: int, version: int) -> None:
    topic = f"sweep-{key}-{version}"
    create(wire, topic)
    produce(wire, topic, 2)
    resp = wire.request(key, version, _body(key, version, topic))
    codes = _error_codes(resp)
    assert codes == [0] * len(codes), resp
    if key == 20:
        assert [r.name for r in resp.responses] == [topic]
    if key == 21:
        assert resp.topics[0].partitions[0].low_watermark == 1
    if key == 23:
        part = resp.topics[0].partitions[0]
        assert (part.leader_epoch, part.end_offset) == (0, 2)
    if key == 35:
        (result,) = resp.results
        sizes = {t.name: t.partitions[0].partition_size for t in result.topics}
        assert sizes[topic] > 0
        assert hasattr(result, "total_bytes") == (version >= 4)


# --- OffsetForLeaderEpoch ---------------------------------------------------------------------


def _ofle(wire: Wire, topic: str, partition: int, epoch: int, current: int = -1) -> Any:
    part = {"partition": partition, "current_leader_epoch": current, "leader_epoch": epoch}
    resp = wire.request(
        23, 3, {"replica_id": -1, "topics": [{"topic": topic, "partitions": [part]}]}
    )
    return resp.topics[0].partitions[0]


def test_offset_for_leader_epoch(wire: Wire) -> None:
    create(wire, "ofle", 2)
    empty = _ofle(wire, "ofle", 0, 0)
    assert (empty.error_code, empty.leader_epoch, empty.end_offset) == (0, 0, 0)
    produce(wire, "ofle", 3)
    produce(wire, "ofle", 2)
    cur = _ofle(wire, "ofle", 0, 0, current=0)
    assert (cur.error_code, cur.leader_epoch, cur.end_offset) == (0, 0, 5)
    newer = _ofle(wire, "ofle", 0, 7)  # an epoch this log never had
    assert (newer.error_code, newer.leader_epoch, newer.end_offset) == (0, -1, -1)
    fenced = _ofle(wire, "ofle", 0, 0, current=3)
    assert fenced.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert _ofle(wire, "ofle", 9, 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert _ofle(wire, "ofle-none", 0, 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


# --- CreateTopics / DeleteTopics / CreatePartitions corners -------------------------------------


def test_create_topics_duplicate_names_and_null_values(broker: InProcessBroker, wire: Wire) -> None:
    topic = {"num_partitions": 1, "replication_factor": 1}
    resp = wire.request(
        19,
        7,
        {
            "topics": [
                {"name": "dup-twice", **topic},
                {"name": "dup-twice", **topic},
                {"name": "null-cfg", **topic, "configs": [{"name": "retention.ms", "value": None}]},
                {"name": "zero-rf", "num_partitions": 1, "replication_factor": 0},
                {"name": "zero-parts", "num_partitions": 0, "replication_factor": 1},
            ],
            "timeout_ms": 1000,
        },
    )
    got = [(t.name, int(t.error_code.value)) for t in resp.topics]
    assert got == [
        ("dup-twice", ErrorCode.INVALID_REQUEST),
        ("null-cfg", ErrorCode.INVALID_CONFIG),
        ("zero-rf", ErrorCode.INVALID_REPLICATION_FACTOR),
        ("zero-parts", ErrorCode.INVALID_PARTITIONS),
    ]
    assert "retention.ms" in resp.topics[1].error_message
    meta = wire.request(3, 12, {"topics": None})
    names = {t.name for t in meta.topics}
    assert names.isdisjoint({"dup-twice", "null-cfg", "zero-rf", "zero-parts"})


def test_delete_topics_by_id_and_disabled(wire: Wire) -> None:
    import uuid

    resp = wire.request(20, 6, {"topics": [{"name": None, "topic_id": uuid.uuid4()}]})
    assert resp.responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
    with (
        seriatim.testing.broker(config={"delete.topic.enable": False}) as b,
        Wire(b.bootstrap) as w,
    ):
        create(w, "keep")
        resp = w.request(20, 4, {"topic_names": ["keep"]})
        assert resp.responses[0].error_code == ErrorCode.TOPIC_DELETION_DISABLED
        meta = w.request(3, 12, {"topics": [{"name": "keep"}]})
        assert meta.topics[0].error_code == 0


def test_create_partitions_assignments(wire: Wire) -> None:
    create(wire, "cp-assign")

    def grow(count: int, assignments: Any) -> int:
        resp = wire.request(
            37,
            3,
            {
                "topics": [{"name": "cp-assign", "count": count, "assignments": assignments}],
                "timeout_ms": 1000,
            },
        )
        return int(resp.results[0].error_code.value)

    assert grow(3, [{"broker_ids": [1]}]) == ErrorCode.INVALID_REPLICA_ASSIGNMENT  # 2 needed
    assert grow(2, [{"broker_ids": [2]}]) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert grow(200_000, None) == ErrorCode.INVALID_PARTITIONS
    assert grow(3, [{"broker_ids": [1]}, {"broker_ids": [1]}]) == ErrorCode.NONE
    meta = wire.request(3, 12, {"topics": [{"name": "cp-assign"}]})
    assert len(meta.topics[0].partitions) == 3


def test_delete_records_edges(wire: Wire) -> None:
    create(wire, "dr-edge")
    produce(wire, "dr-edge", 4)

    def delete(partition: int, offset: int) -> tuple[int, int]:
        resp = wire.request(
            21,
            2,
            {
                "topics": [
                    {
                        "name": "dr-edge",
                        "partitions": [{"partition_index": partition, "offset": offset}],
                    }
                ],
                "timeout_ms": 1000,
            },
        )
        p = resp.topics[0].partitions[0]
        return int(p.error_code.value), int(p.low_watermark)

    assert delete(0, 2) == (0, 2)
    assert delete(0, 1) == (0, 2)  # never moves back
    assert delete(0, 5) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert delete(0, -7) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert delete(0, -1) == (0, 4)  # -1: up to the high watermark
    assert delete(3, 0) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)


# --- DescribeConfigs / IncrementalAlterConfigs / AlterConfigs corners ---------------------------


def test_describe_configs_filters(wire: Wire) -> None:
    create(wire, "dc-filter", retention_ms="1234")
    resp = wire.request(
        32,
        4,
        {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": "dc-filter",
                    "configuration_keys": ["retention.ms", "no.such.key"],
                },
                {"resource_type": 4, "resource_name": "7", "configuration_keys": None},
                {"resource_type": 2, "resource_name": "dc-none", "configuration_keys": None},
            ],
            "include_synonyms": False,
            "include_documentation": False,
        },
    )
    topic, other_broker, missing = resp.results
    assert [(c.name, c.value, c.config_source, c.synonyms) for c in topic.configs] == [
        ("retention.ms", "1234", 1, ())
    ]
    assert other_broker.error_code == ErrorCode.INVALID_REQUEST
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _iac(
    wire: Wire, topic: str, *ops: tuple[str, int, str | None], validate_only: bool = False
) -> Any:
    configs = [{"name": n, "config_operation": op, "value": v} for n, op, v in ops]
    resp = wire.request(
        44,
        1,
        {
            "resources": [{"resource_type": 2, "resource_name": topic, "configs": configs}],
            "validate_only": validate_only,
        },
    )
    return resp.responses[0]


def test_incremental_alter_configs_corners(broker: InProcessBroker, wire: Wire) -> None:
    create(wire, "iac-edge", retention_ms="1000")
    res = _iac(wire, "iac-edge", ("retention.ms", 0, None))
    assert res.error_code == ErrorCode.INVALID_REQUEST
    res = _iac(wire, "iac-edge", ("retention.ms", 0, "5"), ("retention.ms", 1, None))
    assert res.error_code == ErrorCode.INVALID_REQUEST
    res = _iac(wire, "iac-edge", ("retention.ms", 3, "1000"))
    assert res.error_code == ErrorCode.INVALID_CONFIG
    res = _iac(wire, "iac-edge", ("retention.ms", 9, "1"))
    assert res.error_code == ErrorCode.INVALID_REQUEST
    res = _iac(wire, "iac-edge", ("retention.ms", 0, "77"), validate_only=True)
    assert res.error_code == ErrorCode.NONE
    assert topic_overrides(broker, "iac-edge") == {"retention.ms": "1000"}
    res = _iac(wire, "iac-edge", ("retention.ms", 0, "x"), validate_only=True)
    assert res.error_code == ErrorCode.INVALID_CONFIG


def _alter(
    wire: Wire, rtype: int, name: str, configs: dict[str, str | None], validate_only: bool = False
) -> Any:
    entries = [{"name": k, "value": v} for k, v in configs.items()]
    resp = wire.request(
        33,
        2,
        {
            "resources": [{"resource_type": rtype, "resource_name": name, "configs": entries}],
            "validate_only": validate_only,
        },
    )
    return resp.responses[0]


def test_alter_configs_replaces_overrides(broker: InProcessBroker, wire: Wire) -> None:
    create(wire, "ac-replace", retention_ms="1000", segment_ms="60000")
    res = _alter(wire, 2, "ac-replace", {"retention.bytes": "4096"}, validate_only=True)
    assert res.error_code == ErrorCode.NONE
    assert topic_overrides(broker, "ac-replace") == {"retention.ms": "1000", "segment.ms": "60000"}
    res = _alter(wire, 2, "ac-replace", {"retention.bytes": "4096"})
    assert res.error_code == ErrorCode.NONE
    assert topic_overrides(broker, "ac-replace") == {"retention.bytes": "4096"}

    res = _alter(wire, 2, "ac-replace", {"retention.bytes": "many"})
    assert res.error_code == ErrorCode.INVALID_CONFIG
    assert "retention.bytes" in res.error_message
    assert _alter(wire, 2, "ac-replace", {"x.y": "1"}).error_code == ErrorCode.INVALID_CONFIG
    assert _alter(wire, 2, "ac-replace", {"retention.ms": None}).error_code == (
        ErrorCode.INVALID_REQUEST
    )
    assert _alter(wire, 2, "ac-none", {"retention.ms": "1"}).error_code == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert _alter(wire, 4, "1", {"num.partitions": "3"}).error_code == ErrorCode.INVALID_REQUEST
    assert topic_overrides(broker, "ac-replace") == {"retention.bytes": "4096"}


# --- DescribeCluster / DescribeLogDirs corners ---------------------------------------------------


def test_describe_cluster_endpoint_types(broker: InProcessBroker, wire: Wire) -> None:
    ok = wire.request(60, 1, {"endpoint_type": 1})
    assert ok.error_code == 0
    assert [(b.broker_id, b.port) for b in ok.brokers] == [(1, broker.port)]
    assert (
        wire.request(60, 1, {"endpoint_type": 2}).error_code == ErrorCode.MISMATCHED_ENDPOINT_TYPE
    )
    assert wire.request(60, 1, {"endpoint_type": 9}).error_code == (
        ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
    )


def test_describe_log_dirs_selected_partitions(wire: Wire) -> None:
    create(wire, "ld-sel", 2)
    produce(wire, "ld-sel", 3, partition=1)
    resp = wire.request(
        35,
        1,
        {
            "topics": [
                {"topic": "ld-sel", "partitions": [1, 5]},
                {"topic": "ld-no", "partitions": [0]},
            ]
        },
    )
    (result,) = resp.results
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in result.topics] == [
        ("ld-sel", [1])
    ]
    assert result.topics[0].partitions[0].partition_size > 0
