"""Capture fuzzer seeds: the request frames real clients send, plus generated ones.

Starts an in-process broker whose request handler records every frame, drives it with
confluent-kafka, kafka-python and aiokafka (admin, produce with every codec, consume in a
group, commit), and writes

* ``fuzz/seeds/requests/<client>-<api_key>v<version>-<n>.bin``: request frames (no size
  prefix), at most 3 per (client, key, version);
* ``fuzz/seeds/requests/gen-<api_key>v<version>.bin``: a default request of every served
  (api_key, version), so every version is seeded even if no client uses it;
* ``fuzz/seeds/records/<client>-<codec>-<n>.bin``: record batches from the captured Produce
  requests, prefixed with the fuzz_records mode byte (0 and 1).

Run ``python fuzz/capture_seeds.py`` (from the repo root, in the test venv); it replaces the
seed directories. The seeds are small (a few hundred KiB in all) and committed.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from kio.serial import entity_writer

import seriatim.testing
from seriatim.clock import SYSTEM_CLOCK
from seriatim.protocol import decode_request, make, parse_request_header, request_class
from seriatim.server.app import broker_app_factory

ROOT = Path(__file__).resolve().parent
SEEDS = ROOT / "seeds"
PER_KIND = 3
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


class Recorder:
    def __init__(self) -> None:
        self.client = "unknown"
        self.frames: dict[tuple[str, int, int], list[bytes]] = defaultdict(list)

    def add(self, frame: bytes) -> None:
        try:
            header, _ = parse_request_header(frame)
        except Exception:
            return
        kept = self.frames[(self.client, header.api_key, header.api_version)]
        if len(kept) < PER_KIND or header.api_key == 0:  # keep every Produce (codecs)
            kept.append(bytes(frame))


class _RecordingHandler:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    async def handle(self, frame: bytes, conn: Any) -> Any:
        self._rec.add(frame)
        return await self._inner.handle(frame, conn)


class _RecordingApp:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    @property
    def handler(self) -> Any:
        return _RecordingHandler(self._inner.handler, self._rec)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()


def drive_confluent(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic("seeds-ck", 2, 1)]).values():
        fut.result(10)
    for codec in CODECS:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "enable.idempotence": True, "linger.ms": 5})
        for i in range(20):
            p.produce("seeds-ck", key=b"k%d" % i, value=b"value-%d" % i * 3,
                      headers=[("h", b"x")])
        assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seeds-ck",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["seeds-ck"])
    got = 0
    for _ in range(100):
        m = c.poll(0.2)
        if m is not None and not m.error():
            got += 1
            if got >= 40:
                break
    c.commit(asynchronous=False)
    c.close()


def drive_kafka_python(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
        for i in range(20):
            p.send("seeds-kp", key=b"k%d" % i, value=b"value-%d" % i * 3)
        p.flush(10)
        p.close()
    c = KafkaConsumer("seeds-kp", bootstrap_servers=bootstrap, group_id="seeds-kp",
                      auto_offset_reset="earliest", consumer_timeout_ms=3000,
                      enable_auto_commit=False)
    for n, _ in enumerate(c):
        if n >= 40:
            break
    c.commit()
    c.close()


def drive_aiokafka(bootstrap: str) -> None:
    async def run() -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        for codec in (None, "gzip", "snappy", "lz4", "zstd"):
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                                 enable_idempotence=True)
            await p.start()
            try:
                for i in range(20):
                    await p.send("seeds-ak", key=b"k%d" % i, value=b"value-%d" % i * 3)
                await p.flush()
            finally:
                await p.stop()
        c = AIOKafkaConsumer("seeds-ak", bootstrap_servers=bootstrap, group_id="seeds-ak",
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            await c.getmany(timeout_ms=3000)
            await c.commit()
        finally:
            await c.stop()

    asyncio.run(run())


def served() -> list[tuple[int, int]]:
    from seriatim.broker.handlers import load_all

    registry = load_all()
    return [(k, v) for k, lo, hi in registry.table() for v in range(lo, hi + 1)
            if registry.lookup(k, v) is not None]


def generated_frame(api_key: int, version: int) -> bytes:
    cls = request_class(api_key, version)
    buf = io.BytesIO()
    buf.write(struct.pack(">hhih", api_key, version, 7, 4) + b"seed")
    if cls.__header_schema__.__version__ >= 2:
        buf.write(b"\x00")
    entity_writer(cls)(buf, make(cls))
    return buf.getvalue()


def main() -> int:
    rec = Recorder()
    real = broker_app_factory(SYSTEM_CLOCK)

    def factory(config: Any) -> Any:
        return _RecordingApp(real(config), rec)

    drivers = (("ck", drive_confluent), ("kp", drive_kafka_python), ("ak", drive_aiokafka))
    with seriatim.testing.broker(app_factory=factory, config={"num.partitions": 2}) as b:
        for name, drive in drivers:
            rec.client = name
            try:
                drive(b.bootstrap)
            except ImportError as exc:
                print(f"skipping {name}: {exc}", file=sys.stderr)
    req_dir, rec_dir = SEEDS / "requests", SEEDS / "records"
    for d in (req_dir, rec_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    n_req = n_rec = 0
    for (client, key, version), frames in sorted(rec.frames.items()):
        for i, frame in enumerate(frames[:PER_KIND]):
            (req_dir / f"{client}-{key}v{version}-{i}.bin").write_bytes(frame)
            n_req += 1
        if key != 0:
            continue
        for i, frame in enumerate(frames):
            _, request = decode_request(frame)
            for topic in request.topic_data:
                for part in topic.partition_data:
                    if not part.records:
                        continue
                    codec = CODECS[part.records[22] & 7] if len(part.records) > 22 else "x"
                    stem = f"{client}-{codec}-{i}-{topic.name}-{part.index}"
                    (rec_dir / f"{stem}-m0.bin").write_bytes(b"\x00" + part.records)
                    (rec_dir / f"{stem}-m1.bin").write_bytes(b"\x01" + part.records)
                    n_rec += 2
    for key, version in served():
        (req_dir / f"gen-{key}v{version}.bin").write_bytes(generated_frame(key, version))
        n_req += 1
    size = sum(p.stat().st_size for d in (req_dir, rec_dir) for p in d.iterdir())
    print(f"wrote {n_req} request seeds and {n_rec} record seeds ({size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
