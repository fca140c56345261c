"""LogManager, LogConfig, checkpoints and the leader-epoch cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seriatim.errors import (
    ErrorCode,
    InvalidConfigError,
    KafkaError,
    LogLockedError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from seriatim.records import build_batch
from seriatim.storage import LogConfig
from seriatim.storage.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    encode_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from seriatim.storage.epoch import LeaderEpochCache
from seriatim.storage.fileops import REAL_FILE_OPS
from seriatim.storage.manager import TOPICS_FILE, LogManager, validate_topic_name


def test_config_round_trips_through_kafka_names_and_rejects_bad_values() -> None:
    cfg = LogConfig.from_kafka({"segment.bytes": "2048", "message.timestamp.type": "LogAppendTime",
                                "flush.policy": "interval", "flush.ms": "10"})
    assert cfg.segment_bytes == 2048 and cfg.log_append_time and cfg.flush_interval_ms == 10
    assert LogConfig.from_kafka(cfg.to_kafka()) == cfg
    assert LogConfig(flush_policy="interval").flush_interval_ms == 1000
    for bad in ({"segment.bytes": "x"}, {"segment.bytes": "3"}, {"retention.ms": "-2"},
                {"flush.policy": "sometimes"}, {"no.such.config": "1"}):
        with pytest.raises(InvalidConfigError):
            LogConfig.from_kafka(bad)


def test_checkpoints_are_atomic_and_crc_checked(tmp_path: Path) -> None:
    path = str(tmp_path / "cp")
    assert read_checkpoint(path, 2) is None
    write_checkpoint(path, [(1, 2), (3, 4)])
    assert read_checkpoint(path, 2) == [(1, 2), (3, 4)]
    data = encode_checkpoint([(5,)])
    assert decode_checkpoint(data, 1) == [(5,)]
    for damaged in (data.replace(b"5", b"6"), data[:-3], b"", data.replace(b"1\n1", b"9\n1")):
        with pytest.raises(CheckpointError):
            decode_checkpoint(damaged, 1)


def test_leader_epoch_cache_assign_truncate_and_reload(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path), REAL_FILE_OPS)
    assert cache.assign(1, 0) and cache.assign(2, 10) and cache.assign(4, 20)
    assert not cache.assign(4, 25)
    cache.assign(3, 15)  # a lower epoch at a lower offset replaces the conflicting entries
    assert cache.entries() == [(1, 0), (2, 10), (3, 15)]
    cache.truncate_from_end(12)
    assert cache.entries() == [(1, 0), (2, 10)]
    cache.truncate_from_start(5)
    assert cache.entries() == [(1, 5), (2, 10)]
    assert LeaderEpochCache(str(tmp_path), REAL_FILE_OPS).entries() == [(1, 5), (2, 10)]


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "with space", "ü", "a/b"])
def test_illegal_topic_names_are_refused(name: str) -> None:
    with pytest.raises(KafkaError) as info:
        validate_topic_name(name)
    assert info.value.code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_manager_restart_keeps_topics_configs_and_data(tmp_path: Path) -> None:
    with LogManager(tmp_path / "data", LogConfig(flush_policy="never")) as mgr:
        mgr.create_topic("events", 3, {"retention.ms": "1000", "segment.bytes": "4096"})
        mgr.create_topic("a.b_c-d", 1)
        mgr.create_topic("dry", 2, {"retention.ms": "5"}, validate_only=True)
        assert "dry" not in mgr.topics()
        assert mgr.topic_overrides("events") == {"retention.ms": "1000", "segment.bytes": "4096"}
        mgr.get("events", 2).append_batch(build_batch([(None, b"x")]))
        mgr.alter_topic_config("events", {"retention.ms": "2000", "segment.bytes": None})
        assert mgr.topic_config("events").retention_ms == 2000
        assert mgr.get("events", 0).config.retention_ms == 2000
        mgr.add_partitions("a.b_c-d", 2)
        with pytest.raises(KafkaError) as info:
            mgr.create_topic("events", 1)
        assert info.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
        with pytest.raises(InvalidConfigError):
            mgr.create_topic("bad", 1, {"segment.bytes": "nope"})
        assert "bad" not in mgr.topics()
        mgr.flush_all()
    with LogManager(tmp_path / "data", LogConfig(flush_policy="never")) as mgr:
        topics = mgr.topics()
        assert topics["events"].partitions == 3
        assert topics["events"].overrides == {"retention.ms": "2000"}
        assert topics["a.b_c-d"].partitions == 2
        assert mgr.topic_config("events").segment_bytes == LogConfig().segment_bytes
        log = mgr.get("events", 2)
        assert log.recovery_report.clean_shutdown and log.end_offset == 1
        mgr.delete_topic("events")
        with pytest.raises(UnknownTopicOrPartitionError):
            mgr.get("events", 0)
    assert not (tmp_path / "data" / "events-0").exists()
    with LogManager(tmp_path / "data") as mgr:
        assert list(mgr.topics()) == ["a.b_c-d"]


def test_manager_refuses_a_second_instance_and_a_damaged_topic_table(tmp_path: Path) -> None:
    with LogManager(tmp_path / "d") as mgr:
        mgr.create_topic("t", 1)
        with pytest.raises(LogLockedError):
            LogManager(tmp_path / "d")
    table = tmp_path / "d" / TOPICS_FILE
    doc = json.loads(table.read_text())
    doc["topics"]["t"]["partitions"] = 5
    table.write_text(json.dumps(doc))
    with pytest.raises(StorageError, match="CRC"):
        LogManager(tmp_path / "d")
