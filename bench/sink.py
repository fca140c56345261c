"""A Kafka "sink": answers ApiVersions, Metadata, Produce (and Fetch, ListOffsets) without
storing anything, so that the load generator can be measured alone.

    python -m bench.sink --port 9099 [--partitions 6]

Produce requests are decoded (kio, as the broker does) and answered with success and a
per-partition offset counter; nothing is kept. Fetch requests are answered with a canned
record batch of ``--fetch-records`` 100-byte records whose base offset is the offset asked
for, so a consumer advances as if it read a real log of unbounded length. ListOffsets answers
0 (earliest) or 2**40 (latest). One node (id 0, this listener) leads every partition of every
topic asked for. Prints ``listening <port>`` once bound; stops on SIGTERM.

Built from seriatim's protocol layer (framing, header parsing, kio decoding, the hand-written
Produce and Fetch encoders), but none of the broker or storage.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from seriatim.protocol import (
    FetchPartitionData,
    FrameDecoder,
    ProducePartitionResult,
    api_versions_response,
    decode_body,
    encode_fetch_response,
    encode_produce_response,
    encode_response,
    kio_error,
    make,
    nested,
    parse_request_header,
    response_class,
)
from seriatim.records import build_batch

# (api_key, min, max) advertised: Produce from v0 (librdkafka needs it), Fetch 4..12,
# ListOffsets 1..7, Metadata 1..12, ApiVersions 0..3.
TABLE = [(0, 0, 11), (1, 4, 12), (2, 1, 7), (3, 1, 12), (18, 0, 3)]
LATEST = 1 << 40


class Sink:
    def __init__(self, port: int, partitions: int, fetch_records: int) -> None:
        self.port = port
        self.partitions = partitions
        self.next_offset: dict[tuple[str, int], int] = {}
        batch = build_batch([(None, b"x" * 100)] * fetch_records, timestamp_ms=1_700_000_000_000)
        # The batch after its 8-byte baseOffset (which is outside the CRC), sent as is: each
        # partition of a Fetch answer is the offset plus this shared buffer, not two ~1 MB
        # copies (bytearray + bytes) per partition. Measured with bench/kafkagen.c, 2M
        # records, 1 consumer: 21M -> 32M records/s; the copies made the sink the limit.
        self.batch_tail = bytes(batch[8:])
        self.batch_records = fetch_records
        self.produced_records = 0
        self.produced_requests = 0

    def handle(self, frame: bytes) -> list[Any] | None:
        header, pos = parse_request_header(frame)
        key, ver, cid = header.api_key, header.api_version, header.correlation_id
        if key == 18:
            return [api_versions_response(cid, min(ver, 3), TABLE)]
        req = decode_body(header, frame, pos)
        if key == 0:
            return self.produce(req, ver, cid)
        if key == 1:
            return self.fetch(req, ver, cid)
        if key == 2:
            return [self.list_offsets(req, ver, cid)]
        if key == 3:
            return [self.metadata(req, ver, cid)]
        raise ValueError(f"the sink does not serve api key {key}")

    def produce(self, req: Any, ver: int, cid: int) -> list[Any] | None:
        topics = []
        for t in req.topic_data:
            results = []
            for p in t.partition_data:
                k = (t.name, p.index)
                base = self.next_offset.get(k, 0)
                records = p.records or b""
                count = int.from_bytes(records[57:61], "big") if len(records) >= 61 else 0
                self.next_offset[k] = base + count
                self.produced_records += count
                results.append(ProducePartitionResult(p.index, 0, base, -1, 0))
            topics.append((t.name, results))
        self.produced_requests += 1
        if req.acks == 0:
            return None
        return [encode_produce_response(ver, cid, topics)]

    def fetch(self, req: Any, ver: int, cid: int) -> list[Any]:
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                base = p.fetch_offset.to_bytes(8, "big", signed=True)  # baseOffset
                parts.append(FetchPartitionData(p.partition, 0, LATEST, LATEST, 0,
                                                records=[base, self.batch_tail]))
            topics.append((t.topic, parts))
        return encode_fetch_response(ver, cid, topics=topics)

    def list_offsets(self, req: Any, ver: int, cid: int) -> bytes:
        cls = response_class(2, ver)
        tcls = nested(cls, "topics")
        pcls = nested(tcls, "partitions")
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                off = 0 if p.timestamp == -2 else LATEST
                fields = {"partition_index": p.partition_index, "error_code": kio_error(0),
                          "timestamp": -1, "offset": off}
                if ver >= 4:
                    fields["leader_epoch"] = 0
                parts.append(make(pcls, **fields))
            topics.append(make(tcls, name=t.name, partitions=tuple(parts)))
        fields = {"topics": tuple(topics)}
        if ver >= 2:
            fields["throttle_time_ms"] = 0
        return encode_response(cid, make(cls, **fields))

    def metadata(self, req: Any, ver: int, cid: int) -> bytes:
        cls = response_class(3, ver)
        tcls = nested(cls, "topics")
        pcls = nested(tcls, "partitions")
        bcls = nested(cls, "brokers")
        names = [t.name for t in (req.topics or ()) if t.name]
        topics = []
        for name in names:
            parts = []
            for i in range(self.partitions):
                f: dict[str, Any] = {"partition_index": i, "leader_id": 0,
                                     "replica_nodes": (0,), "isr_nodes": (0,)}
                if ver >= 7:
                    f["leader_epoch"] = 0
                if ver >= 5:
                    f["offline_replicas"] = ()
                parts.append(make(pcls, **f))
            tf: dict[str, Any] = {"name": name, "partitions": tuple(parts)}
            if ver >= 1:
                tf["is_internal"] = False
            topics.append(make(tcls, **tf))
        fields: dict[str, Any] = {
            "brokers": (make(bcls, node_id=0, host="127.0.0.1", port=self.port),),
            "topics": tuple(topics),
        }
        if ver >= 1:
            fields["controller_id"] = 0
        if ver >= 2:
            fields["cluster_id"] = "sink"
        return encode_response(cid, make(cls, **fields))


class SinkProtocol(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.decoder = FrameDecoder(200 * 1024 * 1024)
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            try:
                out = self.sink.handle(frame)
            except Exception as exc:  # a bench tool: say why and drop the connection
                print(f"sink: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                self.transport.close()
                return
            if out:
                self.transport.writelines(out)


async def serve(port: int, partitions: int, fetch_records: int) -> None:
    loop = asyncio.get_running_loop()
    sink = Sink(port, partitions, fetch_records)
    server = await loop.create_server(lambda: SinkProtocol(sink), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"listening {port}", flush=True)
    await stop.wait()
    server.close()
    print(f"produced {sink.produced_records} records in {sink.produced_requests} requests",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--fetch-records", type=int, default=10_000)
    args = ap.parse_args(argv)
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.port, args.partitions, args.fetch_records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
