"""The kill -9 loop, shared by tests/robustness/test_kill9_broker.py and tools/soak.py.

A broker SUBPROCESS with ``log.flush.policy=always`` takes idempotent acks=all load from
confluent-kafka producer threads; at seeded random moments it is SIGKILLed and restarted on
the same port. At the end every successful delivery report (value, partition, offset) is
checked against what a raw Fetch reads back after the final restart. Checks (Jepsen names):

* ``lost``: an acknowledged value is not at its reported offset (must be 0);
* ``inconsistent``: two acknowledgements name the same (partition, offset) (must be 0);
* ``gaps``: the offsets read back are not contiguous from the log start (must be 0);
* ``duplicates``: values stored at more than one offset (must be 0): a batch written and
  fsynced just before the kill is retried by the idempotent client, and the broker's producer
  state (snapshotted and rebuilt from the log on recovery) answers it with the original offset.
* ``restart_s``: SIGKILL -> answering ApiVersions again (must be < 3 s).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robust_support import BrokerProcess, RawConn, create_topic

from seriatim.records import iter_batches, iter_records

TOPIC = "kill9"


@dataclass
class KillResult:
    seed: int
    rounds: int
    acked: int = 0
    failed: int = 0
    stored: int = 0
    lost: list[tuple[int, int, bytes]] = field(default_factory=list)
    inconsistent: int = 0
    gaps: list[str] = field(default_factory=list)
    duplicates: int = 0
    restart_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        worst = max(self.restart_s, default=0.0)
        return (
            f"seed={self.seed} rounds={self.rounds} acked={self.acked} failed={self.failed} "
            f"stored={self.stored} lost={len(self.lost)} inconsistent={self.inconsistent} "
            f"gaps={len(self.gaps)} duplicates={self.duplicates} "
            f"restart_max={worst:.2f}s errors={len(self.errors)}"
        )


class _Load:
    """One producer thread: unique values, delivery reports collected."""

    def __init__(self, bootstrap: str, name: str, rate_per_s: float, partitions: int) -> None:
        from confluent_kafka import Producer

        self.name = name
        self.rate = rate_per_s
        self.partitions = partitions
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 20,
            "socket.connection.setup.timeout.ms": 2000,
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 2,  # connection-refused noise during the kills
        })
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"load-{name}", daemon=True)

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(str(err))

    def _run(self) -> None:
        seq = 0
        interval = 1.0 / self.rate
        next_t = time.monotonic()
        while not self.stop.is_set():
            value = b"%s-%d" % (self.name.encode(), seq)
            try:
                self.producer.produce(TOPIC, value=value, partition=seq % self.partitions,
                                      on_delivery=self._report)
                seq += 1
            except BufferError:
                pass
            self.producer.poll(0)
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()

    def finish(self, timeout_s: float) -> None:
        self.stop.set()
        self.thread.join()
        left = self.producer.flush(timeout_s)
        if left:
            self.errors.append(f"{left} messages still undelivered after {timeout_s} s")


def read_partition(bootstrap: str, partition: int) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record of the partition, by raw Fetch v12."""
    out: list[tuple[int, bytes | None]] = []
    offset = 0
    with RawConn(bootstrap, timeout_s=10) as c:
        while True:
            body = {
                "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 8 << 20,
                "topics": [{"topic": TOPIC, "partitions": [
                    {"partition": partition, "fetch_offset": offset,
                     "partition_max_bytes": 8 << 20}]}],
            }
            resp = c.request(1, 12, body)
            part = resp.responses[0].partitions[0]
            assert int(part.error_code.value) == 0, part
            data = bytes(part.records or b"")
            if not data:
                return out
            for pos, header in iter_batches(data):
                for rec in iter_records(data[pos : pos + header.size]):
                    if rec.offset >= offset:
                        out.append((rec.offset, rec.value))
                offset = max(offset, header.next_offset)
            if offset >= int(part.high_watermark):
                return out


def run_kill_loop(
    root: Path,
    *,
    seed: int,
    rounds: int = 10,
    min_gap_s: float = 0.5,
    max_gap_s: float = 2.0,
    producers: int = 2,
    rate_per_s: float = 1000.0,
    partitions: int = 2,
) -> KillResult:
    rng = random.Random(seed)
    result = KillResult(seed=seed, rounds=rounds)
    broker = BrokerProcess(root / "data", {"log.flush.policy": "always"},
                           log_path=root / "broker.log")
    loads: list[_Load] = []
    try:
        broker.start()
        create_topic(broker.bootstrap, TOPIC, partitions)
        loads = [_Load(broker.bootstrap, f"p{i}", rate_per_s, partitions)
                 for i in range(producers)]
        for load in loads:
            load.thread.start()
        for _ in range(rounds):
            time.sleep(rng.uniform(min_gap_s, max_gap_s))
            broker.kill9()
            t0 = time.monotonic()
            broker.start(timeout_s=10)
            result.restart_s.append(time.monotonic() - t0)
        time.sleep(0.5)
        for load in loads:
            load.finish(60)
        # The final restart: a last kill, so the check reads what recovery kept.
        broker.kill9()
        t0 = time.monotonic()
        broker.start(timeout_s=10)
        result.restart_s.append(time.monotonic() - t0)
        stored: dict[tuple[int, int], bytes | None] = {}
        for p in range(partitions):
            records = read_partition(broker.bootstrap, p)
            offsets = [o for o, _ in records]
            if offsets != list(range(len(offsets))):
                result.gaps.append(f"partition {p}: offsets not contiguous from 0")
            for o, v in records:
                stored[(p, o)] = v
        result.stored = len(stored)
        values = Counter(stored.values())
        result.duplicates = sum(n - 1 for n in values.values() if n > 1)
        by_offset: dict[tuple[int, int], set[bytes]] = defaultdict(set)
        for load in loads:
            result.failed += load.failed
            result.errors += load.errors
            for p, o, v in load.acked:
                result.acked += 1
                by_offset[(p, o)].add(v)
                if stored.get((p, o)) != v:
                    result.lost.append((p, o, v))
        result.inconsistent = sum(1 for vs in by_offset.values() if len(vs) > 1)
    finally:
        for load in loads:
            load.stop.set()
        broker.close()
    return result
