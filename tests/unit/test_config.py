"""BrokerConfig: defaults, the four sources and their precedence, parsing and errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seriatim.config import (
    LONG_MAX,
    BrokerConfig,
    ConfigSource,
    Listener,
    env_key,
    parse_properties,
)
from seriatim.errors import InvalidConfigError


def load(tmp_path: Path | None = None, file_text: str | None = None, **kw: object) -> BrokerConfig:
    config_file = None
    if file_text is not None:
        assert tmp_path is not None
        config_file = tmp_path / "server.properties"
        config_file.write_text(file_text)
    kw.setdefault("env", {})
    return BrokerConfig.load(config_file=config_file, **kw)  # type: ignore[arg-type]


def test_defaults_are_kafkas_with_seriatims_listener_and_data_dir() -> None:
    c = load()
    assert c.listeners == (Listener("PLAINTEXT", "127.0.0.1", 9092),)
    assert c.advertised_listeners == c.listeners
    assert c.bootstrap == "127.0.0.1:9092"
    assert c.node_id == 1
    assert c.log_dirs == ("./data",) and c.log_dir == "./data"
    assert c.num_partitions == 1
    assert c.auto_create_topics_enable is True
    assert c.delete_topic_enable is True
    assert c.default_replication_factor == 1
    assert c.message_max_bytes == 1_048_588
    assert c.socket_request_max_bytes == 104_857_600
    assert c.connections_max_idle_ms == 600_000
    assert c.log_segment_bytes == 1_073_741_824
    assert c.log_retention_ms == 168 * 3_600_000
    assert c.log_roll_ms == 168 * 3_600_000
    assert c.log_retention_bytes == -1
    assert c.flush_policy == "always"
    assert c.log_flush_interval_messages == LONG_MAX
    assert c.log_flush_interval_ms is None
    assert c.log_message_timestamp_type == "CreateTime"
    assert c.log_cleanup_policy == ("delete",)
    assert c.compression_type == "producer"
    assert c.group_initial_rebalance_delay_ms == 3000
    assert c.offsets_topic_num_partitions == 50
    assert c.source("num.partitions") is ConfigSource.DEFAULT
    assert c.warnings == ()


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "num.partitions=2\nlog.segment.bytes=1000\nmessage.max.bytes=500\nnode.id=7\n",
        env={"SERIATIM_LOG_SEGMENT_BYTES": "2000", "SERIATIM_MESSAGE_MAX_BYTES": "600"},
        flags=["message.max.bytes=700"],
    )
    assert (c.num_partitions, c.source("num.partitions")) == (2, ConfigSource.FILE)
    assert (c.log_segment_bytes, c.source("log.segment.bytes")) == (2000, ConfigSource.ENV)
    assert (c.message_max_bytes, c.source("message.max.bytes")) == (700, ConfigSource.FLAG)
    assert c.node_id == 7
    assert c.get("message.max.bytes") == "700"
    entry = c.entry("log.segment.bytes")
    assert entry is not None and entry.origin == "env SERIATIM_LOG_SEGMENT_BYTES"
    assert c.entry("num.partitions").origin == "server.properties:1"  # type: ignore[union-attr]


def test_env_names_map_to_dotted_keys() -> None:
    assert env_key("SERIATIM_LOG_DIRS") == "log.dirs"
    assert env_key("SERIATIM_AUTO_CREATE_TOPICS_ENABLE") == "auto.create.topics.enable"
    assert env_key("SERIATIM_SOME__UNDERSCORE") == "some_underscore"  # Kafka docker rules
    assert env_key("SERIATIM_SOME___DASH") == "some-dash"
    assert env_key("SERIATIM_UVLOOP") is None  # a runtime knob, not a config key
    assert env_key("HOME") is None


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIATIM_NUM_PARTITIONS", "4")
    assert BrokerConfig.load().num_partitions == 4


def test_java_properties_syntax() -> None:
    text = (
        "# comment\n"
        "! also a comment\n"
        "  a.b = 1  \n"
        "c.d:2\n"
        "e.f 3\n"
        "g.h=x\\\n"
        "    y\n"
        "i.j=tab\\there\\u0041\n"
        "k\\=l=m\n"
        "empty=\n"
    )
    assert [(k, v) for k, v, _ in parse_properties(text)] == [
        ("a.b", "1  "),  # Java keeps trailing blanks; BrokerConfig strips them
        ("c.d", "2"),
        ("e.f", "3"),
        ("g.h", "xy"),
        ("i.j", "tab\thereA"),
        ("k=l", "m"),
        ("empty", ""),
    ]
    assert [line for *_, line in parse_properties(text)][:3] == [3, 4, 5]


def test_listeners_parse_ipv6_empty_host_and_several(tmp_path: Path) -> None:
    c = load(
        flags=[
            "listeners=PLAINTEXT://[::1]:9092,INTERNAL://127.0.0.1:9093",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        ]
    )
    assert c.listeners == (
        Listener("PLAINTEXT", "::1", 9092),
        Listener("INTERNAL", "127.0.0.1", 9093),
    )
    assert c.bootstrap == "[::1]:9092"
    assert str(c.listeners[0]) == "PLAINTEXT://[::1]:9092"
    assert c.advertised_for("INTERNAL").address == "127.0.0.1:9093"
    every = load(flags=["listeners=PLAINTEXT://:9092"])
    assert every.listeners[0].host == ""
    assert every.advertised_listeners[0].host != ""  # the host name, as Kafka does


def test_advertised_listeners_override_and_reject_unroutable() -> None:
    c = load(
        flags=[
            "listeners=PLAINTEXT://0.0.0.0:9092",
            "advertised.listeners=PLAINTEXT://broker.example:19092",
        ]
    )
    assert c.listeners[0].host == "0.0.0.0"
    assert c.bootstrap == "broker.example:19092"
    with pytest.raises(InvalidConfigError, match=r"listeners.*0\.0\.0\.0.*advertised\.listeners"):
        load(flags=["listeners=PLAINTEXT://0.0.0.0:9092"])
    with pytest.raises(InvalidConfigError, match=r"advertised\.listeners"):
        load(flags=["advertised.listeners=PLAINTEXT://0.0.0.0:9092"])
    with pytest.raises(InvalidConfigError, match="OTHER is not in listeners"):
        load(flags=["advertised.listeners=OTHER://h:1"])


def test_kraft_controller_listener_is_dropped_and_tls_rejected() -> None:
    c = load(
        flags=[
            "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "controller.listener.names=CONTROLLER",
        ]
    )
    assert [lis.name for lis in c.listeners] == ["PLAINTEXT"]
    with pytest.raises(InvalidConfigError, match="PLAINTEXT only"):
        load(flags=["listeners=SSL://127.0.0.1:9093"])


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("num.partitions=0", "num.partitions"),
        ("num.partitions=abc", "expected an integer"),
        ("auto.create.topics.enable=yes", "expected true or false"),
        ("log.flush.policy=sometimes", "always, interval, never"),
        ("log.message.timestamp.type=createtime", "CreateTime, LogAppendTime"),
        ("log.cleanup.policy=delete,shred", "delete, compact"),
        ("compression.type=brotli", "uncompressed, zstd, lz4, snappy, gzip, producer"),
        ("listeners=127.0.0.1:9092", "NAME://host:port"),
        ("listeners=PLAINTEXT://h:70000", "not in [0, 65535]"),
        ("log.segment.bytes=10", "[14, 2147483647]"),
        ("log.cleaner.min.cleanable.ratio=2", "[0.0, 1.0]"),
    ],
)
def test_invalid_values_name_the_key_value_and_what_is_allowed(flag: str, fragment: str) -> None:
    key, value = flag.split("=", 1)
    with pytest.raises(InvalidConfigError) as info:
        load(flags=[flag])
    message = str(info.value)
    assert key in message and repr(value) in message and fragment in message
    assert "-c " + key in message  # where it came from


def test_invalid_value_in_a_file_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"server\.properties:2"):
        load(tmp_path, "num.partitions=3\nmessage.max.bytes=-5\n")


def test_malformed_flag_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="key=value"):
        load(flags=["num.partitions"])
    with pytest.raises(InvalidConfigError, match="cannot read config file"):
        BrokerConfig.load(config_file=tmp_path / "nope.properties", env={})


def test_unknown_keys_warn_and_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="seriatim.config"):
        c = load(flags=["fancy.new.feature=on", "num.network.threads=3"])
    assert c.get("fancy.new.feature") == "on"
    assert c.unknown_keys() == ["fancy.new.feature"]
    assert any("fancy.new.feature" in w for w in c.warnings)
    assert "fancy.new.feature" in caplog.text
    # A stock Kafka key seriatim has no use for is accepted quietly.
    assert c.get("num.network.threads") == "3"
    assert "num.network.threads" not in caplog.text


def test_retention_units_follow_kafka_precedence_within_a_source(tmp_path: Path) -> None:
    assert load(flags=["log.retention.hours=2"]).log_retention_ms == 7_200_000
    assert load(flags=["log.retention.minutes=3"]).log_retention_ms == 180_000
    both = load(flags=["log.retention.hours=2", "log.retention.minutes=3", "log.retention.ms=5"])
    assert both.log_retention_ms == 5
    assert load(flags=["log.retention.ms=-1"]).log_retention_ms == -1
    assert load(flags=["log.retention.hours=-1"]).log_retention_ms == -1
    assert load(flags=["log.roll.hours=1"]).log_roll_ms == 3_600_000
    assert load(flags=["log.roll.ms=10", "log.roll.hours=1"]).log_roll_ms == 10


def test_a_higher_source_wins_across_unit_families(tmp_path: Path) -> None:
    c = load(tmp_path, "log.retention.ms=1000\n", flags=["log.retention.hours=1"])
    assert c.log_retention_ms == 3_600_000
    c = load(tmp_path, "log.dir=/a\n", flags=["log.dirs=/b,/c"])
    assert c.log_dirs == ("/b", "/c") and c.log_dir == "/b"
    assert any("only '/b'" in w for w in c.warnings)
    assert load(flags=["log.dir=/x"]).log_dir == "/x"


def test_broker_id_is_an_alias_for_node_id() -> None:
    assert load(flags=["broker.id=4"]).node_id == 4
    assert load(flags=["broker.id=4", "node.id=5"]).node_id == 5
    assert load(flags=["broker.id=-1"]).node_id == 1


def test_topic_defaults_map_broker_keys_to_topic_keys() -> None:
    c = load(
        flags=[
            "log.segment.bytes=2048",
            "log.retention.minutes=10",
            "message.max.bytes=9999",
            "log.message.timestamp.type=LogAppendTime",
            "log.cleanup.policy=compact,delete",
            "log.flush.interval.messages=100",
            "log.flush.interval.ms=50",
            "log.index.interval.bytes=128",
            "log.roll.ms=60000",
            "log.flush.policy=interval",
            "log.preallocate=TRUE",
        ]
    )
    t = c.topic_defaults(include_all=True)
    assert t["segment.bytes"] == "2048"
    assert t["retention.ms"] == "600000"
    assert t["max.message.bytes"] == "9999"
    assert t["message.timestamp.type"] == "LogAppendTime"
    assert t["cleanup.policy"] == "compact,delete"
    assert t["flush.messages"] == "100"
    assert t["flush.ms"] == "50"
    assert t["index.interval.bytes"] == "128"
    assert t["segment.ms"] == "60000"
    assert t["flush.policy"] == "interval"
    assert t["preallocate"] == "true"
    assert t["retention.bytes"] == "-1"
    assert t["compression.type"] == "producer"
    assert "flush.ms" not in load().topic_defaults()  # unset: storage picks its own
    # By default only the keys the log engine reads.
    assert set(c.topic_defaults()) == {
        "segment.bytes", "segment.ms", "segment.index.bytes", "index.interval.bytes",
        "retention.ms", "retention.bytes", "max.message.bytes", "message.timestamp.type",
        "cleanup.policy", "flush.policy", "flush.messages", "flush.ms",
        "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms",
        "min.cleanable.dirty.ratio",
    }  # fmt: skip


def test_topic_defaults_are_accepted_by_the_log_engine() -> None:
    storage = pytest.importorskip("seriatim.storage")
    config = storage.LogConfig.from_kafka(load(flags=["log.retention.minutes=10"]).topic_defaults())
    assert config.retention_ms == 600_000
    assert config.flush_policy == "always"


def test_broker_synonyms_for_describe_configs() -> None:
    c = load(flags=["log.retention.minutes=10"])
    syn = c.broker_synonyms("retention.ms")
    assert [(e.name, e.value, e.source) for e in syn] == [
        ("log.retention.minutes", "10", ConfigSource.FLAG),
        ("log.retention.hours", "168", ConfigSource.DEFAULT),
    ]
    assert ConfigSource.FLAG.kafka_source == 4 and ConfigSource.DEFAULT.kafka_source == 5
    assert c.broker_synonyms("no.such.key") == []


def test_with_overrides_and_bound_ports() -> None:
    c = BrokerConfig.from_props({"listeners": "PLAINTEXT://127.0.0.1:0"}, num_partitions=3)
    assert c.num_partitions == 3 and c.source("num.partitions") is ConfigSource.FLAG
    bound = c.with_bound_ports({"PLAINTEXT": 4321})
    assert bound.listeners[0].port == 4321
    assert bound.bootstrap == "127.0.0.1:4321"
    assert bound.get("listeners") == "PLAINTEXT://127.0.0.1:4321"
    # The resolved config survives a rebuild (what a restart does).
    assert bound.with_overrides({"num.partitions": 5}).listeners[0].port == 4321
    with pytest.raises(InvalidConfigError):
        c.with_overrides({"num.partitions": 0})
    assert c.num_partitions == 3  # frozen: unchanged


def test_group_session_timeout_bounds_are_consistent() -> None:
    with pytest.raises(InvalidConfigError, match=r"group\.min\.session\.timeout\.ms"):
        load(flags=["group.min.session.timeout.ms=10", "group.max.session.timeout.ms=5"])


def test_transaction_and_offsets_keys_are_kept() -> None:
    c = load(flags=["transaction.state.log.num.partitions=5", "transaction.state.log.foo=1"])
    assert c.get("transaction.state.log.num.partitions") == "5"
    assert c.get("transaction.state.log.foo") == "1"
    assert c.unknown_keys() == []
