"""make()/nested(): kio entities built from the fields a handler knows, defaults filled in."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.constants import uuid_zero

from seriatim.errors import ErrorCode
from seriatim.protocol import make, nested, response_class


def roundtrip(entity: Any) -> Any:
    buf = io.BytesIO()
    entity_writer(type(entity))(buf, entity)
    data = buf.getvalue()
    back, used = entity_reader(type(entity))(data, 0)
    assert used == len(data)
    return back


@pytest.mark.parametrize("version", range(14))
def test_metadata_every_version_builds_and_roundtrips(version: int) -> None:
    cls = response_class(3, version)
    entity = make(
        cls,
        brokers=[{"node_id": 1, "host": "localhost", "port": 9092}],
        topics=[
            {
                "name": "t",
                "error_code": ErrorCode.NONE,
                "partitions": [
                    {"partition_index": 0, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}
                ],
            }
        ],
    )
    assert roundtrip(entity) == entity
    topic_cls = nested(cls, "topics")
    assert type(entity.topics[0]) is topic_cls
    assert type(entity.topics[0].partitions[0]) is nested(topic_cls, "partitions")
    assert entity.topics[0].partitions[0].replica_nodes == (1,)


def test_defaults_follow_the_schema_and_nullability() -> None:
    cls = response_class(3, 12)
    m = make(cls)
    assert m.brokers == () and m.topics == ()
    assert m.cluster_id is None  # nullable string
    assert m.controller_id == -1  # the schema's default
    assert m.throttle_time == datetime.timedelta(0)
    topic = make(nested(cls, "topics"))
    assert topic.error_code is KioErrorCode.none
    assert topic.is_internal is False
    assert topic.topic_id is None or topic.topic_id == uuid_zero


def test_conversions_error_codes_ms_aliases_and_lists() -> None:
    cls = response_class(19, 7)  # CreateTopics
    r = make(
        cls,
        throttle_time_ms=25,
        topics=[{"name": "x", "error_code": 36, "error_message": "exists", "num_partitions": 3}],
    )
    assert r.throttle_time == datetime.timedelta(milliseconds=25)
    assert r.topics[0].error_code is KioErrorCode.topic_already_exists
    assert isinstance(r.topics, tuple)
    assert roundtrip(r) == r


@pytest.mark.parametrize("version", range(2, 8))
def test_create_topics_every_version(version: int) -> None:
    cls = response_class(19, version)
    r = make(cls, topics=[{"name": "a", "error_code": ErrorCode.INVALID_PARTITIONS}])
    assert roundtrip(r) == r


@pytest.mark.parametrize("version", range(1, 5))
def test_describe_configs_every_version(version: int) -> None:
    cls = response_class(32, version)
    result_cls = nested(cls, "results")
    config_cls = nested(result_cls, "configs")
    r = make(
        cls,
        results=[
            {
                "resource_type": 2,
                "resource_name": "t",
                "configs": [make(config_cls, name="retention.ms", value="1000", read_only=False)],
            }
        ],
    )
    assert r.results[0].configs[0].value == "1000"
    assert roundtrip(r) == r


@pytest.mark.parametrize("version", range(1, 12))
def test_list_offsets_every_version(version: int) -> None:
    cls = response_class(2, version)
    r = make(
        cls,
        topics=[
            {
                "name": "t",
                "partitions": [{"partition_index": 0, "offset": 42, "error_code": ErrorCode.NONE}],
            }
        ],
    )
    assert roundtrip(r) == r


def test_produce_log_append_time_accepts_milliseconds() -> None:
    part = nested(nested(response_class(0, 9), "responses"), "partition_responses")
    p = make(part, index=0, base_offset=5, log_append_time=1_700_000_000_123)
    assert isinstance(p.log_append_time, datetime.datetime)
    assert make(part, log_append_time_ms=-1).log_append_time is None


def test_unknown_field_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="no field 'nope'"):
        make(response_class(3, 12), nope=1)


def test_nested_rejects_scalar_fields() -> None:
    with pytest.raises(TypeError):
        nested(response_class(3, 12), "cluster_id")
    with pytest.raises(AttributeError):
        nested(response_class(3, 12), "missing")
