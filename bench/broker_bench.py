"""The broker (``seriatim serve``) driven by confluent-kafka, against Redis Streams.

Produce: ``N`` records with 100-byte values (no key) into a fresh 6-partition topic,
``acks=1``, timed from the first ``produce()`` to the end of ``flush()`` (every delivery
report in). The producer batches hard so that the client is not the limit: ``linger.ms=5``,
``batch.size=1000000``, ``batch.num.messages=100000``, a 4 M-message queue, no compression.

Consume: a fresh consumer assigned to all 6 partitions from the beginning reads the ``N``
records back (``consume(num_messages=10000)``; ``fetch.max.bytes`` 50 MB, 10 MB per
partition, ``queued.min.messages`` 1 M), timed from ``assign()`` to the last record.

Redis Streams (Debian redis-server, loopback, no RDB; AOF ``appendfsync everysec`` as the
main baseline, which like ``acks=1`` acknowledges before the fsync): ``XADD`` of the same
records, round-robin over 6 streams, from redis-py + hiredis in pipelines of 1 000; reading
back with ``XREAD COUNT 1000`` over the 6 streams. redis-py is pure Python above the parser,
so it is usually the limit; ``redis-benchmark`` (C, ``-P 100 -c 50``) gives the server-side
XADD ceiling for scale.

``seriatim serve`` runs as a subprocess with its default config (``log.flush.policy=always``:
group commit in the background, ``acks=1`` answered once the batch is in the log).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import redis_util
from bench.common import (
    Measurement,
    Row,
    Settings,
    Suite,
    free_port,
    scratch_dir,
    skipped,
    stop_process,
    wait_for_port,
)
from bench.common import measure as _measure

PARTITIONS = 6
VALUE = b"x" * 100
REDIS_PIPELINE = 1000

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": 1,
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


# --- seriatim serve ---------------------------------------------------------------------------


def _serve_cmd() -> list[str] | None:
    exe = shutil.which("seriatim", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    try:
        import seriatim.cli.main  # noqa: F401
    except Exception:
        return None
    return [sys.executable, "-m", "seriatim.cli.main"]


@contextmanager
def seriatim_server() -> Iterator[str]:
    base = _serve_cmd()
    if base is None:
        raise RuntimeError("the seriatim CLI is not importable")
    port = free_port()
    with scratch_dir("broker") as d:
        cmd = [*base, "serve", "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "-c", f"log.dirs={d}/data", "-c", f"num.partitions={PARTITIONS}",
               "--log-level", "warning"]
        log_file = open(d / "serve.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, 30.0, proc)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process(proc)
            log_file.close()
            if proc.returncode not in (0, -15):
                print(f"    note: seriatim serve exited with {proc.returncode}; log tail:\n"
                      + (d / "serve.log").read_text(errors="replace")[-2000:], flush=True)


# --- Kafka client side --------------------------------------------------------------------------


def _create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, PARTITIONS, 1)], request_timeout=30)
    futures[topic].result(timeout=30)


def _end_offsets(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-wm"})
    try:
        total = 0
        for p in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += hi - lo
        return total
    finally:
        c.close()


def kafka_produce(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    from confluent_kafka import KafkaException, Producer

    errors: list[Any] = []
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG,
                  "error_cb": errors.append})
    p.list_topics(topic, timeout=10)  # connect and fetch metadata before the clock starts
    produce, poll = p.produce, p.poll
    t0 = time.perf_counter()
    for i in range(n):
        try:
            produce(topic, VALUE)
        except BufferError:
            poll(0.01)
            produce(topic, VALUE)
        if i % 100_000 == 0:
            poll(0)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    if left or errors:
        raise KafkaException(f"{left} messages undelivered; errors: {errors[:3]}")
    return n, dt


def kafka_produce_ceiling(n: int) -> tuple[float, float]:
    """produce() calls/s with nothing listening: what the load generator alone can do."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", **PRODUCER_CONFIG,
                  "error_cb": lambda _err: None, "log_level": 0})
    produce = p.produce
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            produce("ceiling", VALUE)
        return n, time.perf_counter() - t0
    finally:
        p.purge()
        p.flush(0)


def kafka_consume(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                  **CONSUMER_CONFIG})
    try:
        c.list_topics(topic, timeout=10)
        got = 0
        deadline = time.monotonic() + 120
        t0 = time.perf_counter()
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        consume = c.consume
        while got < n:
            msgs = consume(num_messages=10_000, timeout=1.0)
            for m in msgs:
                if m.error() is not None:
                    raise RuntimeError(f"consume error: {m.error()}")
            got += len(msgs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumed {got} of {n}")
        return got, time.perf_counter() - t0
    finally:
        c.close()


# --- Redis side ----------------------------------------------------------------------------------


def _redis_client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port)


def redis_produce(port: int, n: int, prefix: str) -> tuple[float, float]:
    r = _redis_client(port)
    try:
        r.ping()
        streams = [f"{prefix}-{p}" for p in range(PARTITIONS)]
        fields = {b"v": VALUE}
        t0 = time.perf_counter()
        sent = 0
        while sent < n:
            pipe = r.pipeline(transaction=False)
            xadd = pipe.xadd
            k = min(REDIS_PIPELINE, n - sent)
            for i in range(sent, sent + k):
                xadd(streams[i % PARTITIONS], fields)
            pipe.execute()
            sent += k
        return n, time.perf_counter() - t0
    finally:
        r.close()


def redis_consume(port: int, n: int, prefix: str) -> tuple[float, float]:
    r = _redis_client(port)
    try:
        r.ping()
        ids: dict[str, str | bytes] = {f"{prefix}-{p}": "0-0" for p in range(PARTITIONS)}
        got = 0
        t0 = time.perf_counter()
        while got < n:
            reply = r.xread(ids, count=REDIS_PIPELINE)
            if not reply:
                raise RuntimeError(f"XREAD returned nothing after {got} of {n} entries")
            for name, entries in reply:
                got += len(entries)
                ids[name.decode() if isinstance(name, bytes) else name] = entries[-1][0]
        return got, time.perf_counter() - t0
    finally:
        r.close()


# --- the suite ----------------------------------------------------------------------------------


def run(settings: Settings) -> Suite:
    suite = Suite("broker", "Broker (`seriatim serve`) with confluent-kafka vs Redis Streams",
                  "python -m bench broker" + (" --quick" if settings.quick else ""))
    n = settings.scale(1_000_000, 200_000)
    n_redis = settings.scale(500_000, 100_000)

    def measure(label: str, unit: str, case: Any, **kw: Any) -> Measurement:
        return _measure(label, unit, case, settings, **kw)

    # seriatim
    s_prod: Measurement
    s_cons: Measurement
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        reason = "confluent-kafka is not installed"
        s_prod = skipped("seriatim, confluent-kafka producer", "msgs/s", reason)
        s_cons = skipped("seriatim, confluent-kafka consumer", "msgs/s", reason)
        ceiling_kafka = skipped("confluent-kafka produce() calls alone", "msgs/s", reason)
    else:
        try:
            with seriatim_server() as bootstrap:
                print(f"  [seriatim serve at {bootstrap}]", flush=True)
                topics: list[str] = []

                def produce_case() -> tuple[float, float]:
                    topic = f"bench-{len(topics)}"
                    _create_topic(bootstrap, topic)
                    topics.append(topic)
                    return kafka_produce(bootstrap, topic, n)

                s_prod = measure("seriatim, confluent-kafka producer (acks=1)", "msgs/s",
                                 produce_case)
                stored = _end_offsets(bootstrap, topics[-1])
                if stored != n:
                    raise RuntimeError(f"topic holds {stored} records, expected {n}")
                s_cons = measure("seriatim, confluent-kafka consumer", "msgs/s",
                                 lambda: kafka_consume(bootstrap, topics[-1], n))
            ceiling_kafka = measure("confluent-kafka produce() calls alone (no broker)",
                                    "msgs/s", lambda: kafka_produce_ceiling(n))
        except Exception as exc:
            reason = f"seriatim serve failed: {type(exc).__name__}: {exc}"[:300]
            print(f"    {reason}", flush=True)
            s_prod = skipped("seriatim, confluent-kafka producer", "msgs/s", reason)
            s_cons = skipped("seriatim, confluent-kafka consumer", "msgs/s", reason)
            ceiling_kafka = skipped("confluent-kafka produce() calls alone", "msgs/s", reason)

    # Redis
    why = redis_util.unavailable()
    r_prod_every: Measurement
    r_prod_none: Measurement
    r_cons: Measurement
    ceiling: Measurement
    if why:
        r_prod_every = skipped("Redis XADD, AOF everysec", "msgs/s", why)
        r_prod_none = skipped("Redis XADD, no persistence", "msgs/s", why)
        r_cons = skipped("Redis XREAD", "msgs/s", why)
        ceiling = skipped("redis-benchmark XADD", "msgs/s", why)
    else:
        runs_done: list[int] = []
        with redis_util.redis_server("everysec") as srv:
            print(f"  [redis-server (AOF everysec) at 127.0.0.1:{srv.port}]", flush=True)

            def redis_produce_case() -> tuple[float, float]:
                runs_done.append(1)
                return redis_produce(srv.port, n_redis, f"s{len(runs_done)}")

            r_prod_every = measure("Redis XADD, AOF everysec (redis-py+hiredis, pipeline "
                                   "1000)", "msgs/s", redis_produce_case)
            last = f"s{len(runs_done)}"
            r_cons = measure("Redis XREAD COUNT 1000 over 6 streams (redis-py+hiredis)",
                             "msgs/s", lambda: redis_consume(srv.port, n_redis, last))
            if redis_util.redis_benchmark_path():
                rb_n = settings.scale(1_000_000, 200_000)
                ceiling = measure("redis-benchmark XADD -P 100 -c 50 (C client), AOF everysec",
                                  "msgs/s", lambda: (redis_util.redis_benchmark_xadd(
                                      srv.port, rb_n, VALUE), 1.0))
            else:
                ceiling = skipped("redis-benchmark XADD", "msgs/s",
                                  "redis-benchmark is not installed (Debian redis-tools)")
        with redis_util.redis_server("none") as srv:
            print(f"  [redis-server (no persistence) at 127.0.0.1:{srv.port}]", flush=True)
            runs_none: list[int] = []

            def redis_none_case() -> tuple[float, float]:
                runs_none.append(1)
                return redis_produce(srv.port, n_redis, f"n{len(runs_none)}")

            r_prod_none = measure("Redis XADD, no persistence (redis-py+hiredis, pipeline "
                                  "1000)", "msgs/s", redis_none_case)

    suite.rows.append(Row(f"Produce {n:,} x 100-byte records, 6 partitions, acks=1 "
                          f"(Redis: {n_redis:,} XADDs over 6 streams)",
                          s_prod, [r_prod_every, r_prod_none, ceiling, ceiling_kafka]))
    suite.rows.append(Row(f"Consume {n:,} records from 6 partitions "
                          f"(Redis: {n_redis:,} entries from 6 streams)", s_cons, [r_cons]))
    suite.notes += [
        f"Median of {settings.runs} runs after {settings.warmup} warm-up run(s). Each "
        "seriatim produce run writes a fresh topic on one `seriatim serve` process; the "
        "consume runs read the last one (page cache warm). Each Redis produce run writes "
        "fresh streams.",
        "Client and server share the 2 cores: librdkafka's threads (or redis-py) compete "
        "with the server for CPU, so these are 'server plus load generator' figures.",
        "The Redis client is the limit on the Redis side (redis-py builds every command in "
        "Python); the redis-benchmark row is the server-side ceiling with a C client, not a "
        "like-for-like comparison. Its runs vary because redis-benchmark and redis-server "
        "fight for the 2 cores.",
        "The last produce row is the load generator alone: `produce()` calls per second "
        "from this Python thread with nothing listening (nothing is sent). When seriatim's "
        "figure is close to it, the client, not the broker, is the limit.",
        "Producer settings: " + ", ".join(f"`{k}={v}`" for k, v in PRODUCER_CONFIG.items())
        + ". Consumer: " + ", ".join(f"`{k}={v}`" for k, v in CONSUMER_CONFIG.items()) + ".",
    ]
    return suite
