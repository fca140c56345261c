"""The broker's error paths, with raw requests over real sockets.

Bad record batches get their per-partition error code (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
INVALID_RECORD ...) and the connection stays usable; bytes that are not the Kafka protocol
(malformed bodies, oversized frames, Produce v0-v2, unknown APIs) close that one connection
with a log line while the broker keeps serving everyone else; many connections pipelining
requests each get their responses in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

import crc32c
import pytest

import seriatim.testing
from seriatim.errors import ErrorCode
from seriatim.protocol._wire import uvarint_bytes as uvarint
from seriatim.records import Compression, TimestampType, build_batch, iter_records
from seriatim.testing import InProcessBroker
from seriatim.testing.wire import RawConnection
from seriatim.testing.wire import decode_response as read_body
from seriatim.testing.wire import encode_request as frame_for

TIMEOUT_S = 10.0
MAX_REQUEST_BYTES = 1024 * 1024


class Wire(RawConnection):
    def closed_by_peer(self) -> bool:
        """Blocks until the broker sends something or closes; True if it closed."""
        return self.expect_closed()

    def api_versions_ok(self) -> bool:
        resp = self.request(18, 3, {"client_software_name": "t", "client_software_version": "1"})
        return int(resp.error_code.value) == 0 and len(resp.api_keys) > 0


@pytest.fixture(scope="module")
def broker() -> Iterator[InProcessBroker]:
    config = {
        "socket.request.max.bytes": MAX_REQUEST_BYTES,
        "auto.create.topics.enable": False,
        "log.flush.policy": "never",
    }
    with seriatim.testing.broker(config=config) as b:
        with Wire(b.bootstrap) as w:
            for name, partitions, configs in (
                ("errs", 2, []),
                ("errs-small", 1, [{"name": "max.message.bytes", "value": "1000"}]),
                ("errs-lat", 1, [{"name": "message.timestamp.type", "value": "LogAppendTime"}]),
                ("errs-many", 8, []),
            ):
                topic = {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": configs,
                }
                resp = w.request(19, 7, {"topics": [topic], "timeout_ms": 1000})
                assert resp.topics[0].error_code == 0, resp
        yield b


@pytest.fixture
def wire(broker: InProcessBroker) -> Iterator[Wire]:
    with Wire(broker.bootstrap) as w:
        yield w


def produce_body(topic: str, records: bytes, partition: int = 0, acks: int = -1) -> dict[str, Any]:
    return {
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }


def produce(wire: Wire, topic: str, records: bytes, partition: int = 0, version: int = 9) -> Any:
    resp = wire.request(0, version, produce_body(topic, records, partition))
    return resp.responses[0].partition_responses[0]


def batch(n: int = 3, **kwargs: Any) -> bytearray:
    return bytearray(build_batch([(b"k%d" % i, b"value-%d" % i) for i in range(n)], **kwargs))



def recrc(buf: bytearray) -> bytes:
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return bytes(buf)


def end_offset(wire: Wire, topic: str, partition: int = 0) -> int:
    body = {
        "replica_id": -1,
        "topics": [
            {"name": topic, "partitions": [{"partition_index": partition, "timestamp": -1}]}
        ],
    }
    resp = wire.request(2, 7, body)
    p = resp.topics[0].partitions[0]
    assert p.error_code == 0
    return int(p.offset)


# --- bad record batches: an error code per partition, the connection stays up -------------------


def test_flipped_crc_is_corrupt_message(wire: Wire) -> None:
    before = end_offset(wire, "errs")
    buf = batch()
    buf[-1] ^= 0x01  # a bit of the last record's value; the stored CRC no longer matches
    res = produce(wire, "errs", bytes(buf))
    assert res.error_code == ErrorCode.CORRUPT_MESSAGE
    assert end_offset(wire, "errs") == before
    assert produce(wire, "errs", bytes(batch())).error_code == 0  # same connection still serves


def test_batch_over_max_message_bytes(wire: Wire) -> None:
    big = build_batch([(None, b"x" * 1200)])
    res = produce(wire, "errs-small", big)
    assert res.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert produce(wire, "errs-small", build_batch([(None, b"x" * 100)])).error_code == 0


def test_record_count_mismatch_is_invalid_record(wire: Wire) -> None:
    buf = batch(3)
    struct.pack_into(">i", buf, 57, 4)  # recordCount 4, lastOffsetDelta still 2
    res = produce(wire, "errs", recrc(buf))
    assert res.error_code == ErrorCode.INVALID_RECORD


def test_header_claiming_more_records_than_present_is_refused(wire: Wire) -> None:
    """recordCount and lastOffsetDelta agree with each other, but the batch holds fewer
    records: a reader would fail on it later, so the append must be refused now."""
    before = end_offset(wire, "errs")
    buf = batch(3)
    struct.pack_into(">i", buf, 23, 3)  # lastOffsetDelta 3
    struct.pack_into(">i", buf, 57, 4)  # recordCount 4
    res = produce(wire, "errs", recrc(buf))
    assert res.error_code == ErrorCode.INVALID_RECORD
    assert end_offset(wire, "errs") == before
    # And the other way round: more records than the header declares.
    buf = batch(3)
    struct.pack_into(">i", buf, 23, 1)  # lastOffsetDelta 1
    struct.pack_into(">i", buf, 57, 2)  # recordCount 2
    assert produce(wire, "errs", recrc(buf)).error_code == ErrorCode.INVALID_RECORD
    assert end_offset(wire, "errs") == before


def test_two_batches_in_one_partition_is_invalid_record(wire: Wire) -> None:
    res = produce(wire, "errs", bytes(batch(2)) + bytes(batch(2)))
    assert res.error_code == ErrorCode.INVALID_RECORD


def test_gzip_bomb_is_refused_and_broker_stays_healthy(broker: InProcessBroker, wire: Wire) -> None:
    # One record whose value is 80 MiB of zeros: ~80 KiB gzipped, above the 64 MiB cap. The
    # same construction with a 1 MiB value is accepted, so the refusal is the cap's doing.
    assert produce(wire, "errs", _gzip_one_record_batch(1024 * 1024)).error_code == 0
    bomb = _gzip_one_record_batch(80 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    start = time.monotonic()
    res = produce(wire, "errs", bomb)
    assert res.error_code == ErrorCode.CORRUPT_MESSAGE
    assert time.monotonic() - start < 5
    with Wire(broker.bootstrap) as other:
        assert other.api_versions_ok()
    assert produce(wire, "errs", bytes(batch(2, compression=Compression.GZIP))).error_code == 0


def _gzip_one_record_batch(value_bytes: int) -> bytes:
    head = batch(1, compression=Compression.GZIP)[:61]
    buf = bytearray(head) + _gzip_bomb_records(value_bytes)
    struct.pack_into(">i", buf, 8, len(buf) - 12)  # batchLength
    struct.pack_into(">i", buf, 23, 0)  # lastOffsetDelta
    struct.pack_into(">i", buf, 57, 1)  # recordCount
    return recrc(buf)


def _gzip_bomb_records(value_bytes: int) -> bytes:
    """A gzip stream of one record (offset delta 0) whose value has ``value_bytes`` zeros."""
    from seriatim.records.varint import encode_varint

    body = b"\x00" + encode_varint(0) + encode_varint(0) + encode_varint(-1)
    body += encode_varint(value_bytes)
    tail = encode_varint(0)  # no headers
    length = len(body) + value_bytes + len(tail)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    out = [comp.compress(encode_varint(length) + body)]
    chunk = bytes(1024 * 1024)
    for _ in range(value_bytes // len(chunk)):
        out.append(comp.compress(chunk))
    out.append(comp.compress(tail))
    out.append(comp.flush())
    return b"".join(out)


def test_unknown_topic_and_partition(wire: Wire) -> None:
    assert produce(wire, "errs", bytes(batch()), partition=5).error_code == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert produce(wire, "errs-nope", bytes(batch())).error_code == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    fetch = wire.request(
        1,
        12,
        {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "topics": [
                {
                    "topic": "errs",
                    "partitions": [
                        {"partition": 7, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                    ],
                },
                {
                    "topic": "errs-nope",
                    "partitions": [
                        {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                    ],
                },
            ],
        },
    )
    codes = [int(p.error_code.value) for t in fetch.responses for p in t.partitions]
    assert codes == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] * 2
    meta = wire.request(
        3, 12, {"topics": [{"name": "errs-nope"}], "allow_auto_topic_creation": True}
    )
    assert meta.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_invalid_acks_and_zstd_before_v7(wire: Wire) -> None:
    resp = wire.request(0, 9, produce_body("errs", bytes(batch()), acks=2))
    assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_REQUIRED_ACKS
    zstd = bytes(batch(2, compression=Compression.ZSTD))
    assert produce(wire, "errs", zstd, version=6).error_code == (
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    )
    assert produce(wire, "errs", zstd, version=7).error_code == 0


def test_log_append_time_topic(wire: Wire) -> None:
    before_ms = int(time.time() * 1000)
    old = build_batch([(None, b"a"), (None, b"b")], timestamp_ms=1_000)
    res = produce(wire, "errs-lat", old)
    after_ms = int(time.time() * 1000)
    assert res.error_code == 0
    append_ms = int(res.log_append_time.timestamp() * 1000)
    assert before_ms - 1 <= append_ms <= after_ms + 1
    # A reader sees the broker's time, not the producer's.
    fetch = wire.request(
        1,
        12,
        {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "topics": [
                {
                    "topic": "errs-lat",
                    "partitions": [
                        {
                            "partition": 0,
                            "fetch_offset": res.base_offset,
                            "partition_max_bytes": 1 << 20,
                        }
                    ],
                }
            ],
        },
    )
    records = fetch.responses[0].partitions[0].records
    got = list(iter_records(records))
    assert [r.timestamp_ms for r in got] == [append_ms, append_ms]
    attributes = struct.unpack_from(">h", records, 21)[0]
    assert attributes & 0x08 == TimestampType.LOG_APPEND_TIME << 3  # set on the stored batch


# --- acks=0 -------------------------------------------------------------------------------------


def test_acks_zero(broker: InProcessBroker, wire: Wire) -> None:
    before = end_offset(wire, "errs", 1)
    wire.send(0, 9, produce_body("errs", bytes(batch(2)), partition=1, acks=0))
    # No reply is owed; the next request's reply is the next frame on the wire.
    assert wire.api_versions_ok()
    assert end_offset(wire, "errs", 1) == before + 2
    # An error under acks=0 cannot be answered: the broker closes the connection instead.
    bad = batch()
    bad[-1] ^= 0xFF
    wire.send(0, 9, produce_body("errs", bytes(bad), partition=1, acks=0))
    assert wire.closed_by_peer()
    with Wire(broker.bootstrap) as other:
        assert end_offset(other, "errs", 1) == before + 2


# --- bytes that are not the protocol: this connection closes, the broker serves on --------------


def _assert_closes(
    broker: InProcessBroker, data: bytes, caplog: pytest.LogCaptureFixture, expect_log: bool = True
) -> None:
    with caplog.at_level(logging.INFO, logger="seriatim.server"), Wire(broker.bootstrap) as w:
        w.sock.sendall(data)
        assert w.closed_by_peer()
    if expect_log:
        assert any("closing connection" in r.getMessage() for r in caplog.records)
    with Wire(broker.bootstrap) as other:
        assert other.api_versions_ok()


def test_malformed_body_closes_connection(
    broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # A Metadata v12 request whose topics array declares 2^31-1 elements in a 5-byte body.
    payload = struct.pack(">hhih", 3, 12, 1, 1) + b"x" + b"\x00" + b"\xff\xff\xff\xff\x07"
    _assert_closes(broker, struct.pack(">i", len(payload)) + payload, caplog)


def test_truncated_produce_body_closes_connection(
    broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    whole = frame_for(0, 9, 1, produce_body("errs", bytes(batch())))
    cut = whole[4:-20]
    _assert_closes(broker, struct.pack(">i", len(cut)) + cut, caplog)


def test_frame_over_socket_request_max_bytes(
    broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the size prefix is sent: the broker refuses it before buffering any body.
    _assert_closes(broker, struct.pack(">i", 2**31 - 1), caplog)
    _assert_closes(broker, struct.pack(">i", MAX_REQUEST_BYTES + 1), caplog)
    _assert_closes(broker, struct.pack(">i", -5), caplog)


def test_frame_at_socket_request_max_bytes_is_read(broker: InProcessBroker) -> None:
    # The limit is inclusive: a request of exactly the maximum is decoded and answered.
    with Wire(broker.bootstrap) as w:
        head = struct.pack(">hhih", 18, 3, 42, 1) + b"x" + b"\x00"  # header v2
        tail = uvarint(2) + b"1" + b"\x00"  # software version "1", no tags
        name_len = MAX_REQUEST_BYTES - len(head) - len(tail) - 3  # a 3-byte uvarint
        payload = head + uvarint(name_len + 1) + b"a" * name_len + tail
        assert len(payload) == MAX_REQUEST_BYTES
        w.sock.sendall(struct.pack(">i", len(payload)) + payload)
        corr, resp = read_body(18, 3, w.recv_frame())
        assert (corr, int(resp.error_code.value)) == (42, 0)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_produce_v0_to_v2_closes(
    broker: InProcessBroker, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Advertised (librdkafka needs v0 in the range) but never served.
    payload = struct.pack(">hhih", 0, version, 1, 1) + b"x" + struct.pack(">hi", 1, 1000)
    payload += struct.pack(">i", 0)  # no topics
    _assert_closes(broker, struct.pack(">i", len(payload)) + payload, caplog)


def test_unknown_api_key_closes(broker: InProcessBroker, caplog: pytest.LogCaptureFixture) -> None:
    payload = struct.pack(">hhih", 999, 0, 1, -1) + b"\x00" * 8
    _assert_closes(broker, struct.pack(">i", len(payload)) + payload, caplog)


def test_api_versions_too_new_gets_v0_unsupported_reply(broker: InProcessBroker) -> None:
    with Wire(broker.bootstrap) as w:
        payload = struct.pack(">hhih", 18, 9, 77, 1) + b"x" + b"\x00" + b"\x01\x01\x00"
        w.sock.sendall(struct.pack(">i", len(payload)) + payload)
        frame = w.recv_frame()
        corr, resp = read_body(18, 0, frame)  # v0 form: no tagged fields, no throttle
        assert corr == 77
        assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
        table = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in resp.api_keys}
        assert table[18] == (0, 4)
        assert table[0][0] == 0
        assert 19 in table and 44 in table and 33 in table
        # The connection stays open: the client retries with a version we serve.
        assert w.api_versions_ok()


# --- many connections, in-order responses ---------------------------------------------------------


def test_many_connections_pipelined_in_order(broker: InProcessBroker) -> None:
    """Each connection pipelines a mix of requests; every response comes back in order and
    appends to different partitions from different connections all land."""
    connections, per_connection = 24, 12

    async def one(conn_no: int) -> list[int]:
        host, port = broker.bootstrap.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            expected: list[tuple[int, int, int]] = []
            out = bytearray()
            for i in range(per_connection):
                corr = conn_no * 1000 + i
                if i % 3 == 0:
                    key, ver, body = (
                        18,
                        3,
                        {"client_software_name": "t", "client_software_version": "1"},
                    )
                elif i % 3 == 1:
                    key, ver, body = 3, 12, {"topics": [{"name": "errs-many"}]}
                else:
                    key, ver = 0, 9
                    body = produce_body("errs-many", bytes(batch(1)), partition=conn_no % 8)
                out += frame_for(key, ver, corr, body)
                expected.append((corr, key, ver))
            writer.write(bytes(out))
            await writer.drain()
            got: list[int] = []
            for _corr, key, ver in expected:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                got_corr, entity = read_body(key, ver, await reader.readexactly(size))
                got.append(got_corr)
                if key == 0:
                    assert entity.responses[0].partition_responses[0].error_code == 0
            return got
        finally:
            writer.close()
            await writer.wait_closed()

    async def run_all() -> list[list[int]]:
        return await asyncio.wait_for(
            asyncio.gather(*(one(c) for c in range(connections))), TIMEOUT_S * 2
        )

    results = asyncio.run(run_all())
    for conn_no, got in enumerate(results):
        assert got == [conn_no * 1000 + i for i in range(per_connection)]
    with Wire(broker.bootstrap) as w:
        appended = sum(end_offset(w, "errs-many", p) for p in range(8))
    assert appended == connections * (per_connection // 3)
