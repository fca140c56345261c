"""Load-generator worker processes (confluent-kafka), one role per process.

    python -m bench.loadgen produce --bootstrap H:P --topic T --n N [--acks 1]
    python -m bench.loadgen consume --bootstrap H:P --topic T --n N --partitions 0,1,...
    python -m bench.loadgen latency-produce --bootstrap H:P --topic T --rate R --seconds S
    python -m bench.loadgen latency-consume --bootstrap H:P --topic T --n N

Every worker connects and fetches metadata first, prints ``ready``, then waits for a line on
stdin (``go``) so that the parent can start several workers at the same instant; it then does
its work and prints one JSON line: ``{"n": items, "t0": start, "t1": end, ...}``. Times are
``time.perf_counter()`` = CLOCK_MONOTONIC, which is the same clock in every process on Linux,
so the parent computes an aggregate rate as ``sum(n) / (max(t1) - min(t0))``.

Producer settings batch hard (as Kreps' 2014 run did with ``batch.size`` 8 KiB over 1 GbE;
here loopback, so larger batches): ``linger.ms=5``, ``batch.size=1 MB``, no compression,
no idempotence. The latency pair sends each record's send time (perf_counter_ns) as the
first 8 bytes of its 100-byte value, ``linger.ms=0``, paced in 1 ms ticks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
import uuid
from typing import Any

VALUE = b"x" * 100

PRODUCER_CONFIG: dict[str, Any] = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 4_000_000,
    "queue.buffering.max.kbytes": 2_000_000,
    "compression.type": "none",
    "enable.idempotence": False,
    "message.max.bytes": 1_000_000,
}
CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.partition.eof": False,
    "fetch.max.bytes": 50 * 1024 * 1024,
    "max.partition.fetch.bytes": 10 * 1024 * 1024,
    "fetch.wait.max.ms": 100,
    "queued.min.messages": 1_000_000,
    "queued.max.messages.kbytes": 1_000_000,
}
LATENCY_PRODUCER: dict[str, Any] = {"linger.ms": 0, "acks": 1, "enable.idempotence": False,
                                    "compression.type": "none"}
LATENCY_CONSUMER: dict[str, Any] = {"fetch.wait.max.ms": 100, "fetch.min.bytes": 1,
                                    "enable.auto.commit": False, "enable.partition.eof": False}
_TS = struct.Struct(">q")


def _ready_then_wait() -> float:
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit("loadgen: parent went away")
    return time.perf_counter()


def produce(bootstrap: str, topic: str, n: int, acks: int) -> dict[str, Any]:
    from confluent_kafka import Producer

    errors: list[str] = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, **PRODUCER_CONFIG,
                  "error_cb": lambda e: errors.append(str(e))})
    p.list_topics(topic, timeout=20)
    prod, poll = p.produce, p.poll
    t0 = _ready_then_wait()
    for i in range(n):
        try:
            prod(topic, VALUE)
        except BufferError:
            poll(0.005)
            prod(topic, VALUE)
        if not i % 100_000:
            poll(0)
    left = p.flush(300)
    t1 = time.perf_counter()
    return {"n": n - left, "t0": t0, "t1": t1, "undelivered": left, "errors": errors[:3]}


def _consumer(bootstrap: str, extra: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                     **extra})


def consume(bootstrap: str, topic: str, n: int, partitions: list[int]) -> dict[str, Any]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = _consumer(bootstrap, CONSUMER_CONFIG)
    try:
        c.list_topics(topic, timeout=20)
        t0 = _ready_then_wait()
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        got = 0
        nbytes = 0
        deadline = time.monotonic() + 300
        cons = c.consume
        while got < n:
            msgs = cons(num_messages=10_000, timeout=1.0)
            for m in msgs:
                if m.error() is not None:
                    raise RuntimeError(f"consume error: {m.error()}")
            got += len(msgs)
            if time.monotonic() > deadline:
                break
        t1 = time.perf_counter()
        return {"n": got, "t0": t0, "t1": t1, "bytes": nbytes}
    finally:
        c.close()


def latency_produce(bootstrap: str, topic: str, rate: int, seconds: float) -> dict[str, Any]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, **LATENCY_PRODUCER})
    p.list_topics(topic, timeout=20)
    prod, poll = p.produce, p.poll
    pad = VALUE[8:]
    per_tick = max(1, rate // 1000)
    total = int(rate * seconds)
    t0 = _ready_then_wait()
    sent = 0
    tick = t0
    clock = time.perf_counter_ns
    while sent < total:
        for _ in range(min(per_tick, total - sent)):
            prod(topic, _TS.pack(clock()) + pad)
        sent += per_tick
        poll(0)
        tick += 0.001
        delay = tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    left = p.flush(30)
    t1 = time.perf_counter()
    return {"n": min(sent, total) - left, "t0": t0, "t1": t1}


def latency_consume(bootstrap: str, topic: str, n: int, partitions: int, skip: int = 0
                    ) -> dict[str, Any]:
    """Latencies of ``n`` records, leaving out the first ``skip`` (connection warm-up)."""
    from confluent_kafka import OFFSET_END, TopicPartition

    c = _consumer(bootstrap, LATENCY_CONSUMER)
    try:
        c.list_topics(topic, timeout=20)
        c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
        # Wait until the assignment is live (positions resolved) before saying ready.
        c.consume(num_messages=1, timeout=1.0)
        t0 = _ready_then_wait()
        lat: list[int] = []
        clock = time.perf_counter_ns
        deadline = time.monotonic() + 120
        unpack = _TS.unpack_from
        poll = c.poll
        while len(lat) < n and time.monotonic() < deadline:
            # poll(), not consume(num_messages=k): consume() waits until k messages are in
            m = poll(0.2)
            if m is not None and m.error() is None:
                now = clock()
                lat.append(now - unpack(m.value())[0])
        t1 = time.perf_counter()
    finally:
        c.close()
    ms = sorted(x / 1e6 for x in lat[skip:])

    def q(f: float) -> float:
        return ms[min(len(ms) - 1, int(f * len(ms)))] if ms else float("nan")

    return {"n": len(ms), "t0": t0, "t1": t1, "p50": q(0.5), "p99": q(0.99),
            "p999": q(0.999), "max": ms[-1] if ms else float("nan"),
            "mean": statistics.fmean(ms) if ms else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("role", choices=["produce", "consume", "latency-produce",
                                     "latency-consume"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--acks", type=int, default=1)
    ap.add_argument("--partitions", default="0,1,2,3,4,5")
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--skip", type=int, default=0, help="latency: leave out the first N")
    a = ap.parse_args(argv)
    parts = [int(x) for x in a.partitions.split(",") if x]
    if a.role == "produce":
        out = produce(a.bootstrap, a.topic, a.n, a.acks)
    elif a.role == "consume":
        out = consume(a.bootstrap, a.topic, a.n, parts)
    elif a.role == "latency-produce":
        out = latency_produce(a.bootstrap, a.topic, a.rate, a.seconds)
    else:
        out = latency_consume(a.bootstrap, a.topic, a.n, len(parts), a.skip)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
