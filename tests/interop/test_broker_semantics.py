"""Wire-level semantics the clients rely on, checked with a raw client over real sockets.

* Fetch long poll: ``max_wait_ms`` is honoured when nothing (or not ``min_bytes``) arrives; a
  waiting fetch wakes when data arrives (under both flush policies, whose wake-up paths differ)
  and keeps waiting until ``min_bytes`` is reached; at least one whole batch comes back even
  when it is larger than ``max_bytes``/``partition_max_bytes``; smaller batches respect them.
* Isolation: read_committed sees LSO = HW = log end (no transactions), in Fetch and ListOffsets.
* Metadata: auto-creation with ``auto.create.topics.enable`` + ``num.partitions`` and the
  request's ``allow_auto_topic_creation``; ``[]`` (no topics) vs null (all topics); every
  served version encodes.
* LogAppendTime: the stored batch carries the broker's time and the LogAppendTime bit, and the
  Produce response reports the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from interop_support import RawClient, now_ms, produce_raw

import seriatim.testing
from seriatim.records import (
    Compression,
    TimestampType,
    build_batch,
    iter_batches,
    iter_records,
    validate_batch,
)

pytestmark = pytest.mark.interop

TOPIC = "sem"


@pytest.fixture
def broker(tmp_path: Any) -> Iterator[seriatim.testing.InProcessBroker]:
    with seriatim.testing.broker(tmp_path / "data", num_partitions=2) as b:
        yield b


def small_batch(tag: str, n: int = 3, size: int = 50) -> bytes:
    return build_batch(
        [(f"{tag}-{i}".encode(), bytes([i % 251]) * size, [("h", b"v")]) for i in range(n)]
    )


def fetch(
    client: RawClient,
    offsets: dict[int, int],
    *,
    max_wait_ms: int,
    min_bytes: int = 1,
    max_bytes: int = 50 * 1024 * 1024,
    partition_max_bytes: int = 1024 * 1024,
    isolation_level: int = 0,
    version: int = 12,
    topic: str = TOPIC,
) -> dict[int, Any]:
    fields: dict[str, Any] = {
        "replica_id": -1,
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": isolation_level,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {"partition": p, "fetch_offset": o, "partition_max_bytes": partition_max_bytes}
                    for p, o in offsets.items()
                ],
            }
        ],
    }
    if version >= 7:
        fields.update(session_id=0, session_epoch=-1, forgotten_topics_data=[])
    resp = client.request(1, version, **fields)
    if version >= 7:
        assert resp.error_code.value == 0
    (topic_resp,) = resp.responses
    return {p.partition_index: p for p in topic_resp.partitions}


def records_of(part: Any) -> bytes:
    return bytes(part.records or b"")


def create(broker: Any, name: str = TOPIC, partitions: int = 2, **configs: str) -> None:
    with RawClient(broker.bootstrap) as c:
        resp = c.request(
            19,
            4,
            topics=[
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [{"name": k, "value": v} for k, v in configs.items()],
                }
            ],
            timeout_ms=30_000,
        )
        assert resp.topics[0].error_code.value == 0, resp


# --- long poll -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 11, 12])
def test_fetch_waits_max_wait_ms_when_nothing_arrives(broker: Any, version: int) -> None:
    create(broker)
    with RawClient(broker.bootstrap) as c:
        t0 = time.monotonic()
        parts = fetch(c, {0: 0, 1: 0}, max_wait_ms=400, version=version)
        elapsed = time.monotonic() - t0
    assert 0.38 <= elapsed < 10, elapsed
    assert all(p.error_code.value == 0 and not records_of(p) for p in parts.values())


def test_fetch_returns_at_once_when_min_bytes_is_met(broker: Any) -> None:
    create(broker)
    with RawClient(broker.bootstrap) as c:
        batch = small_batch("a")
        produce_raw(c, TOPIC, 0, batch)
        t0 = time.monotonic()
        parts = fetch(c, {0: 0, 1: 0}, max_wait_ms=20_000, min_bytes=1)
        elapsed = time.monotonic() - t0
    assert elapsed < 10, "a satisfied fetch waited for max_wait_ms"
    got = records_of(parts[0])
    assert [r.key for r in iter_records(got)] == [r.key for r in iter_records(batch)]
    assert records_of(parts[1]) == b""


def test_fetch_waits_for_min_bytes_then_returns_what_there_is(broker: Any) -> None:
    create(broker)
    with RawClient(broker.bootstrap) as c:
        produce_raw(c, TOPIC, 0, small_batch("a"))
        t0 = time.monotonic()
        parts = fetch(c, {0: 0}, max_wait_ms=400, min_bytes=1024 * 1024)
        elapsed = time.monotonic() - t0
    assert 0.38 <= elapsed < 10, elapsed
    assert validate_batch(records_of(parts[0])).record_count == 3


def _fetch_in_thread(bootstrap: str, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        with RawClient(bootstrap) as c:
            t0 = time.monotonic()
            try:
                result["parts"] = fetch(c, **kwargs)
            except BaseException as exc:  # surfaced by the test thread
                result["error"] = exc
            result["elapsed"] = time.monotonic() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("policy", ["always", "never"])
def test_a_waiting_fetch_wakes_when_data_arrives(tmp_path: Any, policy: str) -> None:
    with seriatim.testing.broker(tmp_path / "d", config={"log.flush.policy": policy}) as b:
        create(b)
        thread, result = _fetch_in_thread(
            b.bootstrap, offsets={0: 0, 1: 0}, max_wait_ms=25_000, min_bytes=1
        )
        batch = small_batch("wake")
        with RawClient(b.bootstrap) as c:
            produce_raw(c, TOPIC, 1, batch)
        thread.join(timeout=40)
        assert not thread.is_alive()
        assert "error" not in result, result
        assert result["elapsed"] < 15, "the fetch was not woken by the produce"
        got = records_of(result["parts"][1])
        assert [r.key for r in iter_records(got)] == [b"wake-0", b"wake-1", b"wake-2"]


def test_a_waiting_fetch_keeps_waiting_until_min_bytes(broker: Any) -> None:
    create(broker)
    first, second = small_batch("one"), small_batch("two")
    thread, result = _fetch_in_thread(
        broker.bootstrap, offsets={0: 0}, max_wait_ms=25_000, min_bytes=len(first) + 1
    )
    with RawClient(broker.bootstrap) as c:
        produce_raw(c, TOPIC, 0, first)
        produce_raw(c, TOPIC, 0, second)
    thread.join(timeout=40)
    assert not thread.is_alive() and "error" not in result, result
    assert result["elapsed"] < 15
    got = records_of(result["parts"][0])
    assert len(got) >= len(first) + 1, "returned before min_bytes was reached"
    assert [h.record_count for _, h in iter_batches(got)] == [3, 3]


# --- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 12])
def test_one_whole_batch_comes_back_even_when_larger_than_max_bytes(
    broker: Any, version: int
) -> None:
    import random

    create(broker)
    big = build_batch([(b"big", random.Random(1).randbytes(300_000))])
    with RawClient(broker.bootstrap) as c:
        produce_raw(c, TOPIC, 0, big)
        produce_raw(c, TOPIC, 0, small_batch("after"))
        produce_raw(c, TOPIC, 1, small_batch("other"))
        parts = fetch(
            c, {0: 0, 1: 0}, max_wait_ms=0, max_bytes=1024, partition_max_bytes=1024,
            version=version,
        )
        got = records_of(parts[0])
        assert len(got) == len(big), "not exactly the one oversized batch"
        header = validate_batch(got)
        assert (header.base_offset, header.record_count) == (0, 1)
        assert records_of(parts[1]) == b"", "the total max_bytes was ignored"
        # The next batch is reachable: the consumer can make progress.
        parts = fetch(c, {0: 1}, max_wait_ms=0, max_bytes=1024, partition_max_bytes=1024)
        assert validate_batch(records_of(parts[0])).base_offset == 1


def test_max_bytes_bounds_a_fetch_of_small_batches(broker: Any) -> None:
    create(broker)
    with RawClient(broker.bootstrap) as c:
        for i in range(20):
            produce_raw(c, TOPIC, 0, small_batch(f"b{i}", n=4, size=200))
        batch_size = len(small_batch("b0", n=4, size=200))
        parts = fetch(c, {0: 0}, max_wait_ms=0, partition_max_bytes=4 * batch_size + 10)
        got = records_of(parts[0])
        assert batch_size <= len(got) <= 4 * batch_size + 10
        whole = [(pos, h) for pos, h in iter_batches(got[: (len(got) // batch_size) * batch_size])]
        assert [h.base_offset for _, h in whole] == [4 * i for i in range(len(whole))]


# --- isolation -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5, 11, 12])
@pytest.mark.parametrize("isolation", [0, 1])
def test_read_committed_sees_lso_equal_to_high_watermark(
    broker: Any, version: int, isolation: int
) -> None:
    create(broker)
    with RawClient(broker.bootstrap) as c:
        for i in range(5):
            produce_raw(c, TOPIC, 0, small_batch(f"i{i}"))
        parts = fetch(c, {0: 0, 1: 0}, max_wait_ms=0, isolation_level=isolation, version=version)
        p0, p1 = parts[0], parts[1]
        assert (p0.high_watermark, p0.last_stable_offset) == (15, 15)
        assert (p1.high_watermark, p1.last_stable_offset) == (0, 0)
        assert sum(h.record_count for _, h in iter_batches(records_of(p0))) == 15
        if isolation == 1:
            assert not p0.aborted_transactions  # [] : nothing aborted
        for lo_version in (2, 5, 7):
            resp = c.request(
                2,
                lo_version,
                replica_id=-1,
                isolation_level=isolation,
                topics=[{"name": TOPIC, "partitions": [
                    {"partition_index": 0, "timestamp": -1},
                    {"partition_index": 1, "timestamp": -2},
                ]}],
            )
            got = {p.partition_index: (p.error_code.value, p.offset)
                   for p in resp.topics[0].partitions}
            assert got == {0: (0, 15), 1: (0, 0)}, (lo_version, got)


# --- Metadata --------------------------------------------------------------------------------


def _metadata(client: RawClient, version: int, topics: list[str] | None, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "topics": None if topics is None else [{"name": t} for t in topics]
    }
    if version >= 4:
        fields.update(kw)
    return client.request(3, version, **fields)


@pytest.mark.parametrize("version", range(13))
def test_metadata_auto_creates_with_num_partitions(tmp_path: Any, version: int) -> None:
    with seriatim.testing.broker(
        tmp_path / "d", config={"auto.create.topics.enable": "true", "num.partitions": "4"}
    ) as b, RawClient(b.bootstrap) as c:
        resp = _metadata(c, version, ["fresh"], allow_auto_topic_creation=True)
        (t,) = resp.topics
        assert t.error_code.value == 0 and len(t.partitions) == 4
        assert sorted(p.partition_index for p in t.partitions) == [0, 1, 2, 3]
        assert all(p.leader_id == b.config.node_id for p in t.partitions)
        assert [br.port for br in resp.brokers] == [b.port]
        if version >= 4:
            resp = _metadata(c, version, ["shy"], allow_auto_topic_creation=False)
            assert [t.error_code.value for t in resp.topics] == [3]  # UNKNOWN_TOPIC_OR_PARTITION
        everything = _metadata(c, 1, None)
        assert {t.name for t in everything.topics} == {"fresh"}


@pytest.mark.parametrize("version", [1, 4, 9, 12])
def test_metadata_does_not_auto_create_when_disabled(tmp_path: Any, version: int) -> None:
    with seriatim.testing.broker(
        tmp_path / "d", config={"auto.create.topics.enable": "false"}
    ) as b, RawClient(b.bootstrap) as c:
        resp = _metadata(c, version, ["nope"], allow_auto_topic_creation=True)
        assert [t.error_code.value for t in resp.topics] == [3]
        assert not _metadata(c, 1, None).topics


@pytest.mark.parametrize("version", range(13))
def test_metadata_empty_list_means_none_and_null_means_all(broker: Any, version: int) -> None:
    create(broker, "alpha", 1)
    create(broker, "beta", 3)
    with RawClient(broker.bootstrap) as c:
        empty = _metadata(c, version, [], allow_auto_topic_creation=False)
        if version == 0:  # v0 has no null: [] means all
            assert {t.name for t in empty.topics} == {"alpha", "beta"}
            return
        assert not empty.topics
        everything = _metadata(c, version, None, allow_auto_topic_creation=False)
        counts = {t.name: len(t.partitions) for t in everything.topics}
        assert counts == {"alpha": 1, "beta": 3}


# --- LogAppendTime ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP, Compression.ZSTD])
def test_log_append_time_topic_stamps_broker_time(broker: Any, codec: Compression) -> None:
    create(broker, "lat", 1, **{"message.timestamp.type": "LogAppendTime"})
    old = now_ms() - 86_400_000
    batch = build_batch(
        [(b"k%d" % i, b"v" * 100, [], old + i) for i in range(10)], compression=codec
    )
    with RawClient(broker.bootstrap) as c:
        before = now_ms()
        resp = c.request(
            0, 9, acks=-1, timeout_ms=30_000,
            topic_data=[{"name": "lat", "partition_data": [{"index": 0, "records": batch}]}],
        )
        after = now_ms()
        part = resp.responses[0].partition_responses[0]
        assert part.error_code.value == 0
        append_ms = round(part.log_append_time.timestamp() * 1000)
        assert before <= append_ms <= after
        got = records_of(fetch(c, {0: 0}, max_wait_ms=0, topic="lat")[0])
    header = validate_batch(got)  # the CRC was recomputed after the rewrite
    assert header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == append_ms
    assert header.compression == codec, "the batch was recompressed"
    assert [r.value for r in iter_records(got)] == [b"v" * 100] * 10
