"""Admin APIs against the in-process broker, driven by real clients.

confluent-kafka's AdminClient (librdkafka) and kafka-python's KafkaAdminClient cover every admin
API; aiokafka's admin covers CreateTopics, DescribeConfigs, AlterConfigs and DeleteRecords.
One broker serves the module (each test uses its own topic names); the restart test has its
own. The broker runs with ``log.retention.hours=48`` so that a STATIC_BROKER_CONFIG source is
visible next to DEFAULT_CONFIG and DYNAMIC_TOPIC_CONFIG.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)
from confluent_kafka.error import KafkaError as CfKafkaError

import seriatim.testing
from seriatim.testing import InProcessBroker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BROKER_CONFIG = {"log.retention.hours": "48"}
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def broker() -> Iterator[InProcessBroker]:
    with seriatim.testing.broker(config=BROKER_CONFIG) as b:
        yield b


@pytest.fixture(scope="module")
def admin(broker: InProcessBroker) -> Iterator[AdminClient]:
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    yield client
    del client  # librdkafka's admin handle has no close(); dropping it destroys it


def outcomes(futures: dict[Any, Any]) -> dict[Any, Any]:
    """key -> result, or the KafkaError code (an int) the future failed with."""
    out: dict[Any, Any] = {}
    for key, fut in futures.items():
        try:
            out[key] = fut.result(TIMEOUT_S)
        except KafkaException as exc:
            out[key] = exc.args[0].code()
    return out


def error_of(fut: Any) -> CfKafkaError:
    with pytest.raises(KafkaException) as info:
        fut.result(TIMEOUT_S)
    err: CfKafkaError = info.value.args[0]
    return err


def partitions(admin: AdminClient, topic: str) -> int | None:
    meta = admin.list_topics(topic=None, timeout=TIMEOUT_S)
    t = meta.topics.get(topic)
    return None if t is None else len(t.partitions)


def describe_topic(admin: AdminClient, topic: str) -> dict[str, Any]:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return dict(admin.describe_configs([res])[res].result(TIMEOUT_S))


def produce(bootstrap: str, topic: str, n: int, partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    try:
        for i in range(n):
            p.produce(topic, value=b"v%d" % i, partition=partition)
        assert p.flush(TIMEOUT_S) == 0
    finally:
        p.flush(0)


# --- CreateTopics ----------------------------------------------------------------------------


def test_create_topic_with_configs(broker: InProcessBroker, admin: AdminClient) -> None:
    fs = admin.create_topics(
        [NewTopic("adm-cfg", 3, 1, config={"retention.ms": "1000", "cleanup.policy": "compact"})]
    )
    assert outcomes(fs) == {"adm-cfg": None}
    assert partitions(admin, "adm-cfg") == 3
    configs = describe_topic(admin, "adm-cfg")
    assert configs["retention.ms"].value == "1000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"
    # The log engine acts on it, not only the topic table.
    cfg = broker.call(_topic_config(broker, "adm-cfg"))
    assert cfg.retention_ms == 1000
    assert cfg.cleanup_policy == "compact"


async def _topic_config(broker: InProcessBroker, topic: str) -> Any:
    return broker.app.state.manager.topic_config(topic)  # type: ignore[attr-defined]


def test_create_validate_only_creates_nothing(admin: AdminClient) -> None:
    fs = admin.create_topics(
        [NewTopic("adm-vo", 2, 1, config={"retention.ms": "1000"})], validate_only=True
    )
    assert outcomes(fs) == {"adm-vo": None}
    assert partitions(admin, "adm-vo") is None
    bad = admin.create_topics(
        [NewTopic("adm-vo", 2, 1, config={"retention.ms": "soon"})], validate_only=True
    )
    err = error_of(bad["adm-vo"])
    assert err.code() == CfKafkaError.INVALID_CONFIG
    assert partitions(admin, "adm-vo") is None


def test_create_topic_errors(admin: AdminClient) -> None:
    assert outcomes(admin.create_topics([NewTopic("adm-dup", 1, 1)])) == {"adm-dup": None}
    fs = admin.create_topics(
        [
            NewTopic("adm-dup", 1, 1),
            NewTopic("adm-badkey", 1, 1, config={"bogus.key": "1"}),
            NewTopic("adm-badval", 1, 1, config={"segment.bytes": "tiny"}),
            NewTopic("adm-rf", 1, 3),
            NewTopic("bad/name", 1, 1),
        ]
    )
    errs = {name: error_of(fut) for name, fut in fs.items()}
    assert errs["adm-dup"].code() == CfKafkaError.TOPIC_ALREADY_EXISTS
    assert errs["adm-badkey"].code() == CfKafkaError.INVALID_CONFIG
    assert "bogus.key" in errs["adm-badkey"].str()
    assert errs["adm-badval"].code() == CfKafkaError.INVALID_CONFIG
    assert "segment.bytes" in errs["adm-badval"].str()
    assert errs["adm-rf"].code() == CfKafkaError.INVALID_REPLICATION_FACTOR
    assert errs["bad/name"].code() == CfKafkaError.TOPIC_EXCEPTION
    for name in ("adm-badkey", "adm-badval", "adm-rf", "bad/name"):
        assert partitions(admin, name) is None


# --- DeleteTopics ----------------------------------------------------------------------------


def test_delete_topics(broker: InProcessBroker, admin: AdminClient) -> None:
    assert outcomes(admin.create_topics([NewTopic("adm-del", 2, 1)])) == {"adm-del": None}
    produce(broker.bootstrap, "adm-del", 3)
    fs = admin.delete_topics(["adm-del", "adm-never-was"])
    res = outcomes(fs)
    assert res["adm-del"] is None
    assert res["adm-never-was"] == CfKafkaError.UNKNOWN_TOPIC_OR_PART
    assert partitions(admin, "adm-del") is None
    # The name is free again, and the new topic starts empty.
    assert outcomes(admin.create_topics([NewTopic("adm-del", 1, 1)])) == {"adm-del": None}
    tp = TopicPartition("adm-del", 0)
    offsets = admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(TIMEOUT_S)
    assert offsets.offset == 0


# --- CreatePartitions --------------------------------------------------------------------------


def test_create_partitions_grow_and_refuse_shrink(admin: AdminClient) -> None:
    assert outcomes(admin.create_topics([NewTopic("adm-parts", 1, 1)])) == {"adm-parts": None}
    assert outcomes(admin.create_partitions([NewPartitions("adm-parts", 4)])) == {"adm-parts": None}
    assert partitions(admin, "adm-parts") == 4
    res = outcomes(
        admin.create_partitions([NewPartitions("adm-parts", 2), NewPartitions("adm-nope", 2)])
    )
    assert res == {
        "adm-parts": CfKafkaError.INVALID_PARTITIONS,
        "adm-nope": CfKafkaError.UNKNOWN_TOPIC_OR_PART,
    }
    assert outcomes(admin.create_partitions([NewPartitions("adm-parts", 4)])) == {
        "adm-parts": CfKafkaError.INVALID_PARTITIONS
    }
    fs = admin.create_partitions([NewPartitions("adm-parts", 9)], validate_only=True)
    assert outcomes(fs) == {"adm-parts": None}
    assert partitions(admin, "adm-parts") == 4


# --- DeleteRecords -------------------------------------------------------------------------------


def test_delete_records_moves_low_watermark(broker: InProcessBroker, admin: AdminClient) -> None:
    assert outcomes(admin.create_topics([NewTopic("adm-dr", 1, 1)])) == {"adm-dr": None}
    produce(broker.bootstrap, "adm-dr", 10)
    tp = TopicPartition("adm-dr", 0, 4)
    deleted = admin.delete_records([tp])[tp].result(TIMEOUT_S)
    assert deleted.low_watermark == 4
    spec = TopicPartition("adm-dr", 0)
    earliest = admin.list_offsets({spec: OffsetSpec.earliest()})[spec].result(TIMEOUT_S)
    assert earliest.offset == 4
    # A consumer starting from the beginning starts at the new low watermark.
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "adm-dr-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition("adm-dr", 0, -2)])  # OFFSET_BEGINNING
        msg = None
        for _ in range(50):
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        assert msg.offset() == 4
        assert msg.value() == b"v4"
    finally:
        consumer.close()
    # Beyond the high watermark: refused, and the low watermark stays.
    beyond = TopicPartition("adm-dr", 0, 11)
    err = error_of(admin.delete_records([beyond])[beyond])
    assert err.code() == CfKafkaError.OFFSET_OUT_OF_RANGE
    earliest = admin.list_offsets({spec: OffsetSpec.earliest()})[spec].result(TIMEOUT_S)
    assert earliest.offset == 4


# --- DescribeConfigs -----------------------------------------------------------------------------


def test_describe_topic_configs_sources_and_synonyms(admin: AdminClient) -> None:
    fs = admin.create_topics([NewTopic("adm-desc", 1, 1, config={"retention.ms": "3600000"}),
                              NewTopic("adm-plain", 1, 1)])
    assert outcomes(fs) == {"adm-desc": None, "adm-plain": None}
    configs = describe_topic(admin, "adm-desc")
    retention = configs["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    synonyms = [(s.name, s.value, s.source) for s in retention.synonyms.values()]
    assert synonyms == [
        ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
        ("log.retention.hours", "48", ConfigSource.STATIC_BROKER_CONFIG.value),
    ]
    # Not overridden, but set on the broker: STATIC_BROKER_CONFIG, the broker's value.
    assert describe_topic(admin, "adm-plain")["retention.ms"].value == str(48 * 3600 * 1000)
    assert (
        describe_topic(admin, "adm-plain")["retention.ms"].source
        == ConfigSource.STATIC_BROKER_CONFIG.value
    )
    # Neither: DEFAULT_CONFIG, Kafka's default.
    seg = configs["segment.bytes"]
    assert (seg.value, seg.source) == ("1073741824", ConfigSource.DEFAULT_CONFIG.value)
    assert [(s.name, s.source) for s in seg.synonyms.values()] == [
        ("log.segment.bytes", ConfigSource.DEFAULT_CONFIG.value)
    ]
    assert not seg.is_read_only
    missing = ConfigResource(ConfigResource.Type.TOPIC, "adm-missing")
    err = error_of(admin.describe_configs([missing])[missing])
    assert err.code() == CfKafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(admin: AdminClient) -> None:
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([res])[res].result(TIMEOUT_S)
    hours = configs["log.retention.hours"]
    assert (hours.value, hours.source) == ("48", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert hours.is_read_only
    parts = configs["num.partitions"]
    assert (parts.value, parts.source) == ("1", ConfigSource.DEFAULT_CONFIG.value)


# --- IncrementalAlterConfigs ----------------------------------------------------------------------


def _op(name: str, op: AlterConfigOpType, value: str | None = None) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=op)


def test_incremental_alter_configs_survive_restart() -> None:
    with seriatim.testing.broker(config=BROKER_CONFIG) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        assert outcomes(admin.create_topics([NewTopic("adm-iac", 2, 1)])) == {"adm-iac": None}
        res = ConfigResource(
            ConfigResource.Type.TOPIC,
            "adm-iac",
            incremental_configs=[
                _op("retention.ms", AlterConfigOpType.SET, "5000"),
                _op("segment.bytes", AlterConfigOpType.SET, "1048576"),
                _op("cleanup.policy", AlterConfigOpType.APPEND, "compact"),
            ],
        )
        assert outcomes(admin.incremental_alter_configs([res])) == {res: None}
        configs = describe_topic(admin, "adm-iac")
        assert configs["retention.ms"].value == "5000"
        assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert configs["cleanup.policy"].value == "delete,compact"
        assert configs["segment.bytes"].value == "1048576"

        res2 = ConfigResource(
            ConfigResource.Type.TOPIC,
            "adm-iac",
            incremental_configs=[
                _op("segment.bytes", AlterConfigOpType.DELETE),
                _op("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete"),
            ],
        )
        assert outcomes(admin.incremental_alter_configs([res2])) == {res2: None}
        configs = describe_topic(admin, "adm-iac")
        assert configs["cleanup.policy"].value == "compact"
        assert configs["segment.bytes"].value == "1073741824"
        assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
        del admin

        b.restart()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        configs = describe_topic(admin, "adm-iac")
        assert configs["retention.ms"].value == "5000"
        assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert configs["cleanup.policy"].value == "compact"
        assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
        for p in (0, 1):  # every partition's log runs with the new config
            plog = b.call(_partition_config(b, "adm-iac", p))
            assert (plog.retention_ms, plog.cleanup_policy) == (5000, "compact")
        del admin


async def _partition_config(broker: InProcessBroker, topic: str, p: int) -> Any:
    return broker.app.state.manager.get(topic, p).config  # type: ignore[attr-defined]


def test_incremental_alter_configs_errors(admin: AdminClient) -> None:
    assert outcomes(admin.create_topics([NewTopic("adm-iac-err", 1, 1)])) == {"adm-iac-err": None}

    def alter(name: str, *entries: ConfigEntry, rtype: Any = ConfigResource.Type.TOPIC) -> Any:
        res = ConfigResource(rtype, name, incremental_configs=list(entries))
        return error_of(admin.incremental_alter_configs([res])[res])

    err = alter("adm-iac-err", _op("retention.ms", AlterConfigOpType.APPEND, "5"))
    assert err.code() == CfKafkaError.INVALID_CONFIG and "retention.ms" in err.str()
    err = alter("adm-iac-err", _op("no.such.config", AlterConfigOpType.SET, "5"))
    assert err.code() == CfKafkaError.INVALID_CONFIG and "no.such.config" in err.str()
    err = alter("adm-iac-err", _op("retention.ms", AlterConfigOpType.SET, "-7"))
    assert err.code() == CfKafkaError.INVALID_CONFIG and "retention.ms" in err.str()
    err = alter("adm-iac-missing", _op("retention.ms", AlterConfigOpType.SET, "5"))
    assert err.code() == CfKafkaError.UNKNOWN_TOPIC_OR_PART
    err = alter(
        "1",
        _op("log.retention.hours", AlterConfigOpType.SET, "1"),
        rtype=ConfigResource.Type.BROKER,
    )
    assert err.code() == CfKafkaError.INVALID_REQUEST
    # Nothing changed.
    configs = describe_topic(admin, "adm-iac-err")
    assert configs["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value


# --- DescribeCluster ---------------------------------------------------------------------------


def test_describe_cluster(broker: InProcessBroker, admin: AdminClient) -> None:
    desc = admin.describe_cluster().result(TIMEOUT_S)
    meta = admin.list_topics(timeout=TIMEOUT_S)
    assert desc.cluster_id == meta.cluster_id
    assert desc.cluster_id
    assert desc.controller.id == 1
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(1, "127.0.0.1", broker.port)]


# --- kafka-python ---------------------------------------------------------------------------------


@pytest.fixture
def kp_admin(broker: InProcessBroker) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        yield client
    finally:
        client.close()


def test_kafka_python_topics_and_partitions(kp_admin: Any) -> None:
    from kafka.admin import NewPartitions
    from kafka.admin import NewTopic as KpNewTopic
    from kafka.errors import (
        InvalidPartitionsError,
        InvalidReplicationFactorError,
        TopicAlreadyExistsError,
        UnknownTopicOrPartitionError,
    )

    resp = kp_admin.create_topics([KpNewTopic("kp-t", 2, 1, topic_configs={"retention.ms": "9"})])
    (topic,) = resp["topics"]
    assert (topic["name"], topic["error_code"], topic["num_partitions"]) == ("kp-t", 0, 2)
    assert topic["configs"]["retention.ms"]["value"] == "9"
    assert topic["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    with pytest.raises(TopicAlreadyExistsError):
        kp_admin.create_topics([KpNewTopic("kp-t", 2, 1)])
    with pytest.raises(InvalidReplicationFactorError):
        kp_admin.create_topics([KpNewTopic("kp-rf", 1, 2)])
    kp_admin.create_partitions({"kp-t": NewPartitions(5)})
    with pytest.raises(InvalidPartitionsError):
        kp_admin.create_partitions({"kp-t": NewPartitions(3)})
    kp_admin.delete_topics(["kp-t"])
    with pytest.raises(UnknownTopicOrPartitionError):
        kp_admin.delete_topics(["kp-t"])


def test_kafka_python_configs(kp_admin: Any) -> None:
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType
    from kafka.admin import NewTopic as KpNewTopic

    kp_admin.create_topics([KpNewTopic("kp-cfg", 1, 1, topic_configs={"retention.ms": "1000"})])
    topic = KpResource(ConfigResourceType.TOPIC, "kp-cfg")
    got = kp_admin.describe_configs([topic], include_synonyms=True, config_filter="all")
    entry = got["topic"]["kp-cfg"]["retention.ms"]
    assert entry["value"] == "1000"
    assert entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert [s["name"] for s in entry["synonyms"]] == ["retention.ms", "log.retention.hours"]
    assert got["topic"]["kp-cfg"]["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    broker_res = KpResource(ConfigResourceType.BROKER, "1")
    got = kp_admin.describe_configs([broker_res], config_filter="all")
    assert got["broker"]["1"]["log.retention.hours"]["value"] == "48"
    assert got["broker"]["1"]["log.retention.hours"]["config_source"] == "STATIC_BROKER_CONFIG"

    # IncrementalAlterConfigs (the default) and AlterConfigs (incremental=False).
    change = KpResource(ConfigResourceType.TOPIC, "kp-cfg", configs={"retention.bytes": "4096"})
    assert kp_admin.alter_configs([change]) == {"topic": {"kp-cfg": "OK"}}
    change = KpResource(ConfigResourceType.TOPIC, "kp-cfg", configs={"segment.ms": "60000"})
    assert kp_admin.alter_configs([change], incremental=False) == {"topic": {"kp-cfg": "OK"}}
    got = kp_admin.describe_configs([topic])["topic"]["kp-cfg"]  # modified ones only
    assert {k: v["value"] for k, v in got.items()} == {
        "retention.ms": "1000",
        "retention.bytes": "4096",
        "segment.ms": "60000",
    }
    bad = KpResource(ConfigResourceType.TOPIC, "kp-cfg", configs={"segment.ms": "0"})
    out = kp_admin.alter_configs([bad], incremental=False)
    assert "InvalidConfigurationError" in out["topic"]["kp-cfg"]
    assert "segment.ms" in out["topic"]["kp-cfg"]


def test_kafka_python_log_dirs_records_cluster(broker: InProcessBroker, kp_admin: Any) -> None:
    from kafka import TopicPartition as KpTopicPartition
    from kafka.admin import NewTopic as KpNewTopic
    from kafka.errors import OffsetOutOfRangeError

    kp_admin.create_topics([KpNewTopic("kp-ld", 2, 1)])

    def sizes() -> dict[int, int]:
        (result,) = kp_admin.describe_log_dirs()
        (log_dir,) = result["log_dirs"]
        assert log_dir["log_dir"] == str(broker.data_dir.resolve())
        (topic,) = [t for t in log_dir["topics"] if t["name"] == "kp-ld"]
        return {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}

    assert sizes() == {0: 0, 1: 0}
    produce(broker.bootstrap, "kp-ld", 20, partition=1)
    after = sizes()
    assert after[0] == 0
    assert after[1] > 20 * 2  # 20 records of at least their values' bytes

    deleted = kp_admin.delete_records({KpTopicPartition("kp-ld", 1): 15})
    assert deleted[KpTopicPartition("kp-ld", 1)]["low_watermark"] == 15
    with pytest.raises(OffsetOutOfRangeError):
        kp_admin.delete_records({KpTopicPartition("kp-ld", 1): 21})

    cluster = kp_admin.describe_cluster()
    assert cluster["controller_id"] == 1
    assert cluster["brokers"] == [
        {"broker_id": 1, "host": "127.0.0.1", "port": broker.port, "rack": None}
    ]


# --- aiokafka ------------------------------------------------------------------------------------


def test_aiokafka_admin(broker: InProcessBroker) -> None:
    from aiokafka import TopicPartition as AioTopicPartition  # type: ignore[import-untyped]
    from aiokafka.admin import (  # type: ignore[import-untyped]
        AIOKafkaAdminClient,
        RecordsToDelete,
    )
    from aiokafka.admin import NewTopic as AioNewTopic
    from aiokafka.admin.config_resource import (  # type: ignore[import-untyped]
        ConfigResource as AioResource,
    )
    from aiokafka.admin.config_resource import ConfigResourceType as AioType

    async def scenario() -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await client.start()
        try:
            resp = await client.create_topics(
                [AioNewTopic("aio-t", 2, 1, topic_configs={"retention.ms": "7000"})]
            )
            assert [(t[0], t[1]) for t in resp.topic_errors] == [("aio-t", 0)]
            resp = await client.create_topics([AioNewTopic("aio-t", 2, 1)])
            assert [(t[0], t[1]) for t in resp.topic_errors] == [("aio-t", 36)]

            # AlterConfigs (key 33) replaces the overrides: retention.ms goes back to default.
            await client.alter_configs(
                [AioResource(AioType.TOPIC, "aio-t", {"retention.bytes": "5000"})]
            )
            (desc,) = await client.describe_configs([AioResource(AioType.TOPIC, "aio-t")])
            (resource,) = desc.resources
            configs = {c[0]: (c[1], c[3]) for c in resource[4]}  # name -> (value, source)
            assert configs["retention.bytes"] == ("5000", 1)
            assert configs["retention.ms"] == (str(48 * 3600 * 1000), 4)
        finally:
            await client.close()

    asyncio.run(scenario())
    produce(broker.bootstrap, "aio-t", 6)

    async def delete() -> dict[Any, int]:
        client = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await client.start()
        try:
            result: dict[Any, int] = await client.delete_records(
                {AioTopicPartition("aio-t", 0): RecordsToDelete(before_offset=2)}
            )
            return result
        finally:
            await client.close()

    assert asyncio.run(delete()) == {AioTopicPartition("aio-t", 0): 2}
