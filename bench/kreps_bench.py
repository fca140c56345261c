"""Kreps' 2014 benchmark on one machine: ``seriatim serve`` beside Redis Streams, raw disk and
loopback TCP, with two load generators each checked against a sink.

Scenarios (Jay Kreps, "Benchmarking Apache Kafka: 2 Million Writes Per Second", 2014), all
with 100-byte values, no key, a fresh 6-partition topic per run:

* one producer, ``acks=1``; one producer, ``acks=all`` (the broker's default
  ``log.flush.policy=always``: acks=all waits for the group-commit fdatasync); three producers
  (three processes, ``acks=1``) -- timed from the release of the workers to the last delivery
  report;
* one consumer (all 6 partitions); three consumers (three processes, 2 partitions each, so the
  three together read the topic once) -- from ``assign()`` to the last record;
* producer and consumer at once -- a consumer reads a fresh topic from the beginning while a
  producer writes it; timed until the consumer has every record;
* end-to-end latency at a steady 10k records/s: a paced producer (``linger.ms=0``, ``acks=1``)
  stamps each value with its send time, a consumer (other process) subtracts it on receipt.
  With ``log.flush.policy=always`` a record is visible only once fsynced, so this includes the
  group commit. Beside it, measured in the same run: the latency of a 1 KiB append +
  fdatasync on the scratch disk, and a paced loopback TCP round trip between two processes.

Every throughput scenario runs with two load generators, one process per producer or consumer:

* librdkafka (``bench/loadgen.c``, Debian ``librdkafka-dev``): what a real client gets. Without
  a compiler or librdkafka-dev it falls back to confluent-kafka (``bench/loadgen.py``);
* kafkagen (``bench/kafkagen.c``, no dependencies): the Kafka protocol written directly on one
  connection per process, i.e. the broker's capacity.

Each is checked against ``bench/sink.py``, a Kafka server that discards: a generator must be
>= 2x faster against the sink than the seriatim figure it produced, or that figure measures the
generator. The throughput targets are judged on kafkagen's figure when its check passes. The
latency pair is confluent-kafka (10k records/s is far below its ceiling).

Baselines in the same run: Redis Streams (XADD with AOF off and with ``appendfsync everysec``;
redis-benchmark in C, pipelined, is the server's ceiling; redis-py + hiredis pipelines are what
a Python producer gets; XREAD / XRANGE to consume); raw disk (the same bytes written in 1 MiB
``os.write`` calls + one fdatasync) and loopback TCP (``sendfile`` of a page-cached file into a
``recv_into`` loop).

The broker's own cost: utime and stime of the ``seriatim serve`` process (/proc/PID/stat)
around each produce and consume run, per GiB of record batches stored or fetched, beside a raw
copy of the same bytes in the same run: socket -> file (``recv_into`` + ``os.write`` +
fdatasync) and file -> socket (``os.sendfile``), each process timing its own CPU and counting
its minor page faults (memory touched anew: a copy into freshly mapped buffers). On this VM
the first write into page-cache memory the guest has not touched lately costs ~2 s of kernel
CPU per GiB (the hypervisor faults guest RAM in; free page reporting gives freed pages back to
the host ~2 s after they are freed), ten times a write into just-freed pages. So every produce
run first deletes the topics of earlier runs that nothing reads any more (a page cache that
grows by gigabytes makes later runs pay that first touch), and produce cost is measured as two
like-for-like pairs: *recycled* (the 1-producer runs, right after those deletes / a file
written right after unlinking the previous one) and *fresh* (a new topic / a new kept file,
nothing freed for FRESH_PAUSE_S before); the target is judged on the recycled pair (a
long-running broker's page cache reuses the pages it evicts).
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import rawcopy, redis_util, workers
from bench.common import (
    Measurement,
    Row,
    Settings,
    Suite,
    Target,
    fmt,
    free_port,
    scratch_dir,
    skipped,
    stop_process,
    target,
)
from bench.common import measure as _measure

PARTITIONS = 6
#: Seconds with nothing freed before a "fresh pages" run: the VM's free page reporting hands
#: freed guest pages back to the host ~2 s after they are freed (then the next touch faults).
FRESH_PAUSE_S = 3.0
VALUE = b"x" * 100
GIB = 1 << 30
MIB = 1 << 20
KREPS = {  # 2014, 3 brokers on 6-core boxes, 1 GbE, 6 SATA disks each (notes §7)
    "p1": "821,557 (no replication)",
    "pall": "421,823 (3x sync replication)",
    "p3": "2,024,032 (3x async replication)",
    "c1": "940,521",
    "c3": "2,615,968",
    "pc": "not published (a 795k figure circulates unconfirmed)",
    "lat": "2 / 3 / 14 ms",
}


def _log_bytes(data: Path, topic: str) -> int:
    total = 0
    for p in range(PARTITIONS):
        d = data / f"{topic}-{p}"
        if d.is_dir():
            total += sum(f.stat().st_size for f in d.iterdir() if f.suffix == ".log")
    return total


@dataclass(frozen=True)
class Gen:
    """A load generator: ``key`` indexes the figures, ``name`` labels them."""

    key: str  # "rdk" (librdkafka, or confluent-kafka as a fallback) or "kg" (kafkagen)
    name: str
    exe: str | None  # None: bench/loadgen.py (confluent-kafka)

    def produce(self, bootstrap: str, topic: str, n: int, acks: str) -> list[str]:
        if self.exe:
            return [self.exe, "produce", bootstrap, topic, str(n), acks]
        return workers.py_loadgen("produce", "--bootstrap", bootstrap, "--topic", topic,
                                  "--n", str(n), "--acks", "-1" if acks == "all" else acks)

    def consume(self, bootstrap: str, topic: str, n: int, parts: str) -> list[str]:
        if self.exe:
            return [self.exe, "consume", bootstrap, topic, str(n), parts]
        return workers.py_loadgen("consume", "--bootstrap", bootstrap, "--topic", topic,
                                  "--n", str(n), "--partitions", parts)


def _loadgen_waits_for_full_batches() -> bool:
    """Does bench/loadgen.c still ask librdkafka for fixed batches of 10 000 messages?"""
    src = workers.ROOT / "bench" / "loadgen.c"
    return src.exists() and "rd_kafka_consume_batch_queue(q, 1000, batch, 10000)" in (
        src.read_text())


LOADGEN_BATCH_NOTE = (
    "Three librdkafka consumers are slower than one because of the load generator, not the "
    "broker or the 2 cores: `bench/loadgen.c` asks librdkafka for batches of 10 000 messages "
    "with a 1 s timeout, so a consumer whose count is not a multiple of 10 000 waits up to 1 s "
    "for its last, partial batch after every record has arrived (librdkafka's debug log shows "
    "the last fetch ~80 ms after the start and the consumer finishing ~1 s later). The "
    "one-consumer count is exactly the records produced; each three-consumer count is two "
    "partitions' ends. kafkagen's three consumers are not slower than its one, and asking for "
    "min(10 000, records left) made librdkafka's three consumers 2.8-4.4M records/s instead "
    "of 1.3M in a trial.")

SPLIT3 = ["0,1", "2,3", "4,5"]
ALL = "0,1,2,3,4,5"


def _check(results: list[dict[str, Any]], n: int, what: str) -> tuple[float, float]:
    items, secs = workers.aggregate(results)
    if items < n:
        errs = [r.get("errors") for r in results]
        raise RuntimeError(f"{what}: {items} of {n} records ({errs})")
    return items, secs


@dataclass(frozen=True)
class CpuRun:
    """One process over one copy: its CPU seconds, minor page faults, and the bytes copied."""

    user: float
    sys: float
    minflt: int
    nbytes: int

    @classmethod
    def between(cls, a: workers.ProcTimes, b: workers.ProcTimes, nbytes: int) -> CpuRun:
        return cls(b.user - a.user, b.sys - a.sys, b.minflt - a.minflt, nbytes)

    @classmethod
    def of(cls, res: dict[str, float]) -> CpuRun:
        """From a bench.rawcopy result."""
        return cls(res["user"], res["sys"], int(res["minflt"]), int(res["bytes"]))


@dataclass
class CpuRuns:
    label: str
    pages: str  # which page-cache pages the bytes went into
    runs: list[CpuRun]

    def _per_gib(self, pick: Callable[[CpuRun], float]) -> Measurement:
        m = Measurement(self.label, "CPU-s/GiB", lower_is_better=True)
        m.values = [pick(r) / (r.nbytes / GIB) for r in self.runs if r.nbytes]
        return m

    def measured(self, warmup: int) -> CpuRuns:
        """Without the first ``warmup`` runs."""
        return CpuRuns(self.label, self.pages, self.runs[warmup:])

    @property
    def user(self) -> Measurement:
        return self._per_gib(lambda r: r.user)

    @property
    def sys(self) -> Measurement:
        return self._per_gib(lambda r: r.sys)

    @property
    def total(self) -> Measurement:
        return self._per_gib(lambda r: r.user + r.sys)

    @property
    def faults_per_page(self) -> float:
        """Median minor page faults per 4 KiB copied: ~0 when the copy reuses its memory,
        1 per page when the bytes land in new memory once (the page cache), more when the
        process also copies them through newly allocated buffers."""
        v = [r.minflt / (r.nbytes / 4096) for r in self.runs if r.nbytes]
        return statistics.median(v) if v else float("nan")


# --- raw baselines ------------------------------------------------------------------------------


def raw_disk_write(path: Path, nbytes: int) -> tuple[float, float]:
    chunk = memoryview(os.urandom(MIB))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, chunk[: min(MIB, left)])
        os.fdatasync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    path.unlink()
    return nbytes, dt


def _rawcopy(role: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.rawcopy", role, "--port", str(port),
                             *args], stdout=subprocess.PIPE, text=True, cwd=workers.ROOT,
                            env=workers._env())
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        stop_process(proc)  # type: ignore[arg-type]
        raise RuntimeError("rawcopy did not start")
    return proc, port


def raw_egress(path: Path, mode: str = "sendfile") -> dict[str, float]:
    """file -> socket by a child process; this process receives and discards."""
    proc, port = _rawcopy("egress", "--file", str(path), "--mode", mode)
    try:
        buf = bytearray(MIB)
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            while s.recv_into(buf):
                pass
        dt = time.perf_counter() - t0
        out, _ = proc.communicate(timeout=60)
        res: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        res["recv_seconds"] = dt
        return res
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def raw_ingest(src: Path, dst: Path) -> dict[str, float]:
    """socket -> file by a child process; this process sendfile()s ``src`` to it. ``dst`` is
    left in place (the caller decides whether its pages are freed before the next copy)."""
    proc, port = _rawcopy("ingest", "--out", str(dst))
    try:
        with socket.create_connection(("127.0.0.1", port)) as s, open(src, "rb") as f:
            s.sendfile(f)
        out, _ = proc.communicate(timeout=120)
        res: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return res
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def loopback_round_trips(rate: int, seconds: float) -> dict[str, float]:
    """Paced 100-byte request/response between this process and an echo child."""
    proc, port = _rawcopy("echo")
    try:
        return rawcopy.round_trips(port, rate, seconds)
    finally:
        stop_process(proc)  # type: ignore[arg-type]


# --- Redis --------------------------------------------------------------------------------------


def _redis_py_produce(port: int, n: int, prefix: str) -> tuple[float, float]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        r.ping()
        streams = [f"{prefix}-{p}" for p in range(PARTITIONS)]
        fields: dict[Any, Any] = {b"v": VALUE}
        t0 = time.perf_counter()
        sent = 0
        while sent < n:
            pipe = r.pipeline(transaction=False)
            k = min(1000, n - sent)
            for i in range(sent, sent + k):
                pipe.xadd(streams[i % PARTITIONS], fields)
            pipe.execute()
            sent += k
        return n, time.perf_counter() - t0
    finally:
        r.close()


def _redis_py_consume(port: int, n: int, prefix: str) -> tuple[float, float]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        ids: dict[Any, Any] = {f"{prefix}-{p}": "0-0" for p in range(PARTITIONS)}
        got = 0
        t0 = time.perf_counter()
        while got < n:
            reply: Any = r.xread(ids, count=1000)
            if not reply:
                raise RuntimeError(f"XREAD returned nothing after {got} of {n}")
            for name, entries in reply:
                got += len(entries)
                ids[name.decode() if isinstance(name, bytes) else name] = entries[-1][0]
        return got, time.perf_counter() - t0
    finally:
        r.close()


def _redis_benchmark(port: int, n: int, *cmd: str, clients: int, pipeline: int) -> float:
    exe = redis_util.redis_benchmark_path()
    assert exe
    out = subprocess.run([exe, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P",
                          str(pipeline), "-n", str(n), "-q", "--csv", *cmd],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    for line in out.splitlines()[1:]:
        if line.startswith('"'):
            return float(line.split('","')[1].strip('"'))
    raise RuntimeError(f"cannot parse redis-benchmark output {out!r}")


def _rb_case(port: int, n: int, *cmd: str, clients: int, pipeline: int, per_call: int = 1
             ) -> tuple[float, float]:
    """A redis-benchmark run as a case: (its requests/s x ``per_call`` items, 1 second)."""
    return _redis_benchmark(port, n, *cmd, clients=clients, pipeline=pipeline) * per_call, 1.0


# --- the suite ----------------------------------------------------------------------------------

#: scenario key -> (short title, the sink check that bounds its generator)
SCENARIOS = {
    "p1": ("1 producer, acks=1", "p1"),
    "pall": ("1 producer, acks=all", "p1"),  # the sink acknowledges acks=all like acks=1
    "p3": ("3 producers", "p3"),
    "c1": ("1 consumer", "c1"),
    "c3": ("3 consumers", "c3"),
    "pc": ("producer + consumer", "pc"),
}
LAT_KEYS = ("p50", "p99", "p999")


def run(settings: Settings) -> Suite:
    quick = settings.quick
    suite = Suite("kreps", "Kreps' 2014 scenarios: `seriatim serve` vs Redis Streams, disk, "
                  "loopback", "python -m bench kreps" + (" --quick" if quick else ""))
    st = Settings(quick, runs=1 if quick else 3, warmup=1)
    n = settings.scale(2_000_000, 300_000)
    n_py = settings.scale(500_000, 100_000)
    lat_seconds = settings.scale(5, 2)
    base_seconds = 1.0 if quick else 1.5  # per run of each latency floor
    lat_rate = 10_000

    def measure(label: str, unit: str, case: Callable[[], tuple[float, float]], **kw: Any
                ) -> Measurement:
        try:
            return _measure(label, unit, case, st, **kw)
        except Exception as exc:  # a failed scenario is a row that says why
            reason = f"{type(exc).__name__}: {exc}"[:300]
            print(f"    {label}: FAILED: {reason}", flush=True)
            return skipped(label, unit, reason)

    S: dict[str, dict[str, Measurement]] = {"rdk": {}, "kg": {}}  # seriatim, per generator
    K: dict[str, dict[str, Measurement]] = {"rdk": {}, "kg": {}}  # generator vs the sink
    names = {"rdk": "librdkafka", "kg": "kafkagen"}
    cpu: dict[str, CpuRuns] = {
        "fresh": CpuRuns("seriatim serve, produce into a new topic", "fresh", []),
        "recycled": CpuRuns("seriatim serve, produce right after deleting earlier runs' "
                            "topics", "recycled", []),
        "kg": CpuRuns("seriatim serve, produce from kafkagen, right after deleting earlier "
                      "runs' topics", "recycled", []),
        "fetch": CpuRuns("seriatim serve, fetch (1 consumer)", "page cache (read)", []),
    }
    bytes_per_record = 0.0
    lat: dict[str, dict[str, list[float]]] = {k: {q: [] for q in LAT_KEYS}
                                              for k in ("always", "syncfs", "never")}

    # Latency floors: what one fsync and one loopback round trip cost, measured right before
    # the end-to-end pair (the disk's sync latency drifts with what was written before).
    base_lat: dict[str, dict[str, list[float]]] = {k: {q: [] for q in LAT_KEYS}
                                                   for k in ("fsync", "rtt10k", "rtt1k")}
    base_rate: dict[str, list[float]] = {k: [] for k in base_lat}

    def floor_case(key: str, fn: Callable[[], dict[str, float]]
                   ) -> Callable[[], tuple[float, float]]:
        def case() -> tuple[float, float]:
            res = fn()
            for q in LAT_KEYS:
                base_lat[key][q].append(res[q])
            base_rate[key].append(res["rate"])
            print(f"      p50 {res['p50']:.3f} p99 {res['p99']:.3f} p99.9 {res['p999']:.3f} "
                  f"max {res['max']:.3f} ms; {res['rate']:,.0f}/s", flush=True)
            return 1, res["p99"] / 1000
        return case

    def measure_floors() -> None:
        with scratch_dir("fsync") as d:
            measure("1 KiB append + fdatasync, back to back (scratch dir)", "ms", floor_case(
                "fsync", lambda: rawcopy.fdatasync_latency(str(d / "f.bin"), base_seconds)),
                lower_is_better=True)
        for key, rate in (("rtt10k", lat_rate), ("rtt1k", 1000)):
            measure(f"loopback TCP round trip, 100 B, {rate:,}/s paced", "ms", floor_case(
                key, partial(loopback_round_trips, rate, base_seconds)), lower_is_better=True)

    with workers.c_loadgen() as rdk_exe, workers.kafkagen() as kg_exe:
        names["rdk"] = "librdkafka" if rdk_exe else "confluent-kafka (Python)"
        gens = [Gen("rdk", names["rdk"], rdk_exe)]
        if kg_exe:
            gens.append(Gen("kg", names["kg"], kg_exe))
        # The broker and the sink (a server that discards) run side by side: each generator's
        # check against the sink runs right after the seriatim figure it bounds, in the same
        # state of the machine's memory (its speed depends on it; see the page-cache note).
        with workers.seriatim() as srv, workers.sink() as snk:
            print(f"  [seriatim serve at {srv.bootstrap}, pid {srv.pid}; sink at "
                  f"{snk.bootstrap}; load: " + ", ".join(g.name for g in gens) + "]",
                  flush=True)
            seq = iter(range(10**6))
            last: dict[str, str] = {}  # "p1": the latest 1-producer acks=1 topic (librdkafka)

            done: list[str] = []  # topics nothing reads any more

            def drop_done() -> None:
                """Delete the topics of earlier runs (seriatim unlinks their files before it
                answers): the page cache stays bounded, as on a broker with retention,
                and the next run writes into the pages they free."""
                while done:
                    workers.delete_topic(srv.bootstrap, done.pop())

            def produce_case(g: Gen, procs: int, acks: str, fresh: bool = False,
                             cpu_key: str = "") -> tuple[float, float]:
                """One produce run into a new topic, right after :func:`drop_done` or, with
                ``fresh``, after FRESH_PAUSE_S with nothing freed. The broker's CPU over the
                run goes to ``cpu[cpu_key]``. The topic of a librdkafka 1-producer acks=1 run
                that is not ``fresh`` becomes ``last["p1"]``, what the consumers read."""
                nonlocal bytes_per_record
                topic = f"p{next(seq)}"
                workers.create_topic(srv.bootstrap, topic)
                c0: list[workers.ProcTimes] = []

                def before_go() -> None:
                    if fresh:
                        time.sleep(FRESH_PAUSE_S)
                    else:
                        drop_done()
                    c0.append(workers.proc_times(srv.pid))

                res = workers.run_workers([g.produce(srv.bootstrap, topic, n // procs, acks)]
                                          * procs, before_go=before_go)
                c1 = workers.proc_times(srv.pid)
                items, secs = _check(res, n // procs * procs, "produce")
                size = _log_bytes(srv.data, topic)
                bytes_per_record = size / items
                if cpu_key:
                    cpu[cpu_key].runs.append(CpuRun.between(c0[0], c1, size))
                if g.key == "rdk" and procs == 1 and acks == "1" and not fresh:
                    done.extend(last.values())
                    last["p1"] = topic
                else:
                    done.append(topic)
                return items, secs

            def consume_case(g: Gen, procs: int) -> tuple[float, float]:
                topic = last["p1"]
                parts = [ALL] if procs == 1 else SPLIT3
                ends = workers.partition_ends(srv.bootstrap, topic)
                counts = [sum(ends[int(x)] for x in pp.split(",")) for pp in parts]
                c0: list[workers.ProcTimes] = []
                res = workers.run_workers(
                    [g.consume(srv.bootstrap, topic, k, pp)
                     for k, pp in zip(counts, parts, strict=True)],
                    before_go=lambda: c0.append(workers.proc_times(srv.pid)))
                c1 = workers.proc_times(srv.pid)
                if procs == 1 and g.key == "rdk":
                    cpu["fetch"].runs.append(
                        CpuRun.between(c0[0], c1, _log_bytes(srv.data, topic)))
                return _check(res, sum(counts), "consume")

            def pc_case(g: Gen) -> tuple[float, float]:
                topic = f"pc{next(seq)}"
                workers.create_topic(srv.bootstrap, topic)
                res = workers.run_workers([g.consume(srv.bootstrap, topic, n, ALL),
                                           g.produce(srv.bootstrap, topic, n, "1")],
                                          before_go=drop_done)
                done.append(topic)
                cons, prod = res
                if cons["n"] < n:
                    raise RuntimeError(f"consumer got {cons['n']} of {n}")
                return n, cons["t1"] - min(cons["t0"], prod["t0"])

            def sink_produce(g: Gen, procs: int) -> tuple[float, float]:
                res = workers.run_workers([g.produce(snk.bootstrap, "s", n // procs, "1")]
                                          * procs)
                return _check(res, n // procs * procs, "sink produce")

            def sink_consume(g: Gen, procs: int) -> tuple[float, float]:
                parts = [ALL] if procs == 1 else SPLIT3
                per = n // len(parts)
                res = workers.run_workers([g.consume(snk.bootstrap, "s", per, pp)
                                           for pp in parts])
                return _check(res, per * len(parts), "sink consume")

            def sink_pc(g: Gen) -> tuple[float, float]:
                cons, prod = workers.run_workers([g.consume(snk.bootstrap, "s", n, ALL),
                                                  g.produce(snk.bootstrap, "s", n, "1")])
                if cons["n"] < n or prod["n"] < n:
                    raise RuntimeError(f"sink pc: consumer {cons['n']}, producer {prod['n']}")
                return n, max(cons["t1"], prod["t1"]) - min(cons["t0"], prod["t0"])

            for g in gens:
                sg, kg, by = S[g.key], K[g.key], f" ({g.name})"
                sg["p1"] = measure("seriatim, 1 producer, acks=1" + by, "records/s",
                                   partial(produce_case, g, 1, "1",
                                           cpu_key="recycled" if g.key == "rdk" else "kg"))
                kg["p1"] = measure(f"{g.name}, 1 producer vs sink (discards)", "records/s",
                                   partial(sink_produce, g, 1))
                sg["pall"] = measure("seriatim, 1 producer, acks=all (group commit)" + by,
                                     "records/s", partial(produce_case, g, 1, "all"))
                sg["p3"] = measure("seriatim, 3 producers (processes), acks=1" + by,
                                   "records/s", partial(produce_case, g, 3, "1"))
                kg["p3"] = measure(f"{g.name}, 3 producers vs sink", "records/s",
                                   partial(sink_produce, g, 3))
                if "p1" in last:
                    sg["c1"] = measure("seriatim, 1 consumer" + by, "records/s",
                                       partial(consume_case, g, 1))
                    sg["c3"] = measure("seriatim, 3 consumers (processes, 2 partitions each)"
                                       + by, "records/s", partial(consume_case, g, 3))
                else:
                    for key in ("c1", "c3"):
                        sg[key] = skipped(f"seriatim, {SCENARIOS[key][0]}{by}", "records/s",
                                          "produce failed")
                kg["c1"] = measure(f"{g.name}, 1 consumer vs sink (canned batches)",
                                   "records/s", partial(sink_consume, g, 1))
                kg["c3"] = measure(f"{g.name}, 3 consumers vs sink", "records/s",
                                   partial(sink_consume, g, 3))
                sg["pc"] = measure("seriatim, 1 producer + 1 consumer at once" + by,
                                   "records/s", partial(pc_case, g))
                kg["pc"] = measure(f"{g.name}, 1 producer + 1 consumer vs sink", "records/s",
                                   partial(sink_pc, g))

            def latency_case_on(bootstrap: str, into: dict[str, list[float]]
                                ) -> Callable[[], tuple[float, float]]:
                def latency_case() -> tuple[float, float]:
                    topic = f"lat{next(seq)}"
                    workers.create_topic(bootstrap, topic)
                    skip = lat_rate // 2  # the first 0.5 s: connections and metadata warm up
                    total = lat_rate * lat_seconds + skip
                    common = ["--bootstrap", bootstrap, "--topic", topic]
                    cons, prod = workers.run_workers([
                        workers.py_loadgen("latency-consume", *common, "--n", str(total),
                                           "--skip", str(skip)),
                        workers.py_loadgen("latency-produce", *common, "--rate",
                                           str(lat_rate), "--seconds", str(lat_seconds + 0.5))])
                    if cons["n"] < (total - skip) * 0.99:
                        raise RuntimeError(f"latency consumer got {cons['n']} of {total}")
                    for k in LAT_KEYS:
                        into[k].append(cons[k])
                    print(f"      latency p50 {cons['p50']:.2f} p99 {cons['p99']:.2f} "
                          f"p99.9 {cons['p999']:.2f} max {cons['max']:.2f} ms; "
                          f"rate {prod['n'] / (prod['t1'] - prod['t0']):,.0f}/s", flush=True)
                    return 1, cons["p99"] / 1000
                return latency_case

            measure_floors()
            measure("seriatim, end-to-end p99 at 10k records/s", "ms",
                    latency_case_on(srv.bootstrap, lat["always"]), lower_is_better=True)

            # The fresh half of the like-for-like CPU pairs (the recycled half is the
            # librdkafka 1-producer runs above): a new topic with nothing freed for
            # FRESH_PAUSE_S. After the latency pair, so that it runs as before.
            S["rdk"]["p1_fresh"] = measure(
                f"seriatim, 1 producer, acks=1 ({gens[0].name}), fresh pages (nothing freed "
                f"for {FRESH_PAUSE_S:g} s)", "records/s",
                lambda: produce_case(gens[0], 1, "1", fresh=True, cpu_key="fresh"))

        # The same latency pair under flush.policy=never (Kafka's default: no fsync before a
        # record is visible), so the figure compares with Kreps' (Kafka did not fsync either).
        with workers.seriatim(["-c", "log.flush.policy=never"]) as srv_never:
            measure("seriatim (flush.policy=never), end-to-end p99 at 10k records/s", "ms",
                    latency_case_on(srv_never.bootstrap, lat["never"]), lower_is_better=True)
        # flush.policy=always with log.flush.syncfs=true: one syncfs(2) per group-commit round
        # instead of an fdatasync per partition (opt-in: for a data dir on a disk of its own).
        with workers.seriatim(["-c", "log.flush.syncfs=true"]) as srv_syncfs:
            measure("seriatim (always + log.flush.syncfs), end-to-end p99 at 10k records/s",
                    "ms", latency_case_on(srv_syncfs.bootstrap, lat["syncfs"]),
                    lower_is_better=True)

    no_kg = ("bench/kafkagen.c missing or did not build" if kg_exe is None else "")
    for key in SCENARIOS:
        S["kg"].setdefault(key, skipped(f"seriatim ({key}, kafkagen)", "records/s", no_kg))
    for key in ("p1", "p3", "c1", "c3", "pc"):
        K["kg"].setdefault(key, skipped(f"kafkagen ({key}) vs sink", "records/s", no_kg))

    # Raw disk and loopback, and the raw copies for the CPU ratio.
    bpr = bytes_per_record or 108.0
    raw_bytes = int(n * bpr)
    R: dict[str, Measurement] = {}
    raw_cpu = {
        "fresh": CpuRuns("raw socket -> file into a new file (kept)", "fresh", []),
        "recycled": CpuRuns("raw socket -> file right after unlinking the previous file",
                            "recycled", []),
        "egress": CpuRuns("raw file -> socket (os.sendfile)", "page cache (read)", []),
    }
    with scratch_dir("raw") as d:
        R["disk"] = measure("raw disk: os.write 1 MiB + fdatasync (same bytes)", "records/s",
                            lambda: raw_disk_write(d / "w.bin", raw_bytes), per=bpr)
        src = d / "src.bin"
        with open(src, "wb") as f:
            left = raw_bytes
            while left > 0:
                f.write(os.urandom(min(MIB, left)))
                left -= MIB

        def egress_case() -> tuple[float, float]:
            res = raw_egress(src)
            raw_cpu["egress"].runs.append(CpuRun.of(res))
            return res["bytes"] / bpr, res["recv_seconds"]

        outs: list[Path] = []

        def ingest_case(pages: str) -> tuple[float, float]:
            if pages == "fresh":
                time.sleep(FRESH_PAUSE_S)
            elif outs:
                outs.pop().unlink()  # its pages are free (and not yet reported) right now
            dst = d / f"dst{len(outs)}-{pages}.bin"
            outs.append(dst)
            res = raw_ingest(src, dst)
            raw_cpu[pages].runs.append(CpuRun.of(res))
            return res["bytes"] / bpr, res["seconds"]

        R["tcp"] = measure("loopback TCP: sendfile -> recv_into (same bytes)", "records/s",
                           egress_case)
        R["ingest"] = measure("raw socket -> file: recv_into + write + fdatasync, new file",
                              "records/s", lambda: ingest_case("fresh"))
        R["ingest_rec"] = measure("raw socket -> file, right after unlinking the previous "
                                  "file", "records/s", lambda: ingest_case("recycled"))
    # Redis Streams.
    why = redis_util.unavailable()
    Rd: dict[str, Measurement] = {}
    if why:
        for k in ("rb_every", "rb1_every", "py_every", "rb_none", "py_none", "py_read",
                  "rb_range"):
            Rd[k] = skipped(f"Redis ({k})", "records/s", why)
    else:
        have_rb = bool(redis_util.redis_benchmark_path())
        no_rb = "redis-benchmark is not installed (Debian redis-tools)"
        xadd = ("XADD", "rb", "*", "v", VALUE.decode())
        for mode, tag in (("everysec", "every"), ("none", "none")):
            aof = "AOF everysec" if mode == "everysec" else "no persistence"
            with redis_util.redis_server(mode) as rs:
                print(f"  [redis-server ({aof}) at 127.0.0.1:{rs.port}]", flush=True)
                if have_rb:
                    Rd[f"rb_{tag}"] = measure(
                        f"Redis XADD, {aof}: redis-benchmark -P 100 -c 50", "records/s",
                        partial(_rb_case, rs.port, n, *xadd, clients=50, pipeline=100))
                    if tag == "every":
                        Rd["rb1_every"] = measure(
                            f"Redis XADD, {aof}: redis-benchmark -P 100 -c 1 (one producer)",
                            "records/s",
                            partial(_rb_case, rs.port, n, *xadd, clients=1, pipeline=100))
                else:
                    Rd[f"rb_{tag}"] = skipped("redis-benchmark XADD", "records/s", no_rb)
                    Rd["rb1_every"] = skipped("redis-benchmark XADD -c 1", "records/s", no_rb)
                runs_done: list[int] = []

                def py_case(p: int = rs.port, t: str = tag, done: list[int] = runs_done
                            ) -> tuple[float, float]:
                    done.append(1)
                    return _redis_py_produce(p, n_py, f"{t}{len(done)}")

                Rd[f"py_{tag}"] = measure(
                    f"Redis XADD, {aof}: redis-py + hiredis, pipelines of 1 000", "records/s",
                    py_case)
                if tag == "every" and runs_done:
                    lastp = f"{tag}{len(runs_done)}"
                    Rd["py_read"] = measure(
                        "Redis XREAD COUNT 1000 over 6 streams (redis-py)", "records/s",
                        partial(_redis_py_consume, rs.port, n_py, lastp))
                    if have_rb:
                        Rd["rb_range"] = measure(
                            "Redis XRANGE COUNT 100: redis-benchmark -P 10 -c 50", "records/s",
                            partial(_rb_case, rs.port, max(n // 100, 1000), "XRANGE",
                                    f"{lastp}-0", "-", "+", "COUNT", "100", clients=50,
                                    pipeline=10, per_call=100))
                    else:
                        Rd["rb_range"] = skipped("redis-benchmark XRANGE", "records/s", no_rb)

    # The latency series hold the warm-up run first: leave it out.
    for series in (*lat.values(), *base_lat.values()):
        for q in LAT_KEYS:
            del series[q][:st.warmup]
    for rates in base_rate.values():
        del rates[:st.warmup]

    # --- rows -------------------------------------------------------------------------------
    def subject(key: str) -> Measurement:
        """kafkagen's figure (the broker's capacity) when there is one, else librdkafka's."""
        return S["kg"][key] if S["kg"][key].ok else S["rdk"][key]

    def both(key: str) -> list[Measurement]:
        """The other generator's seriatim figure and each generator's sink check."""
        sub = subject(key)
        sk = SCENARIOS[key][1]
        return [m for m in (S["rdk"][key], S["kg"][key]) if m is not sub] + [
            K["rdk"][sk], K["kg"][sk]]

    S1 = S["rdk"]
    suite.rows += [
        Row(f"One producer, acks=1: {n:,} records of 100 bytes, 6 partitions", subject("p1"),
            [*both("p1")[:1], S1["p1_fresh"], Rd["rb1_every"],
             Rd["rb_every"], Rd["rb_none"], Rd["py_every"], Rd["py_none"], R["disk"], R["tcp"],
             *both("p1")[1:]]),
        Row("One producer, acks=all (fdatasync group commit before the ack)", subject("pall"),
            [*both("pall")[:1], Rd["rb_every"], R["disk"], *both("pall")[1:]]),
        Row("Three producers (3 processes), acks=1", subject("p3"),
            [*both("p3")[:1], Rd["rb_every"], Rd["rb_none"], *both("p3")[1:]]),
        Row(f"One consumer: {n:,} records from 6 partitions (page cache warm)", subject("c1"),
            [*both("c1")[:1], Rd["py_read"], Rd["rb_range"], R["tcp"], *both("c1")[1:]]),
        Row("Three consumers (3 processes, 2 partitions each)", subject("c3"),
            [*both("c3")[:1], Rd["rb_range"], *both("c3")[1:]]),
        Row("One producer and one consumer at once (until the consumer has every record)",
            subject("pc"), both("pc")),
    ]

    # CPU per GiB: user and system time, in like-for-like pairs.
    warm = st.warmup  # the first run of each series is its warm-up: left out

    def cpu_row(c: CpuRuns, raw: CpuRuns | None) -> str:
        runs = c.measured(warm)
        tot = runs.total
        if not tot.ok:
            return f"| {c.label} | {c.pages} | n/a | n/a | n/a | n/a | | - |"
        rat = "-"
        if raw is not None:
            rat = ratio(tot, raw.measured(warm).total)
        return (f"| {c.label} | {c.pages} | {fmt(runs.user.median)} | {fmt(runs.sys.median)} "
                f"| **{fmt(tot.median)}** | {runs.faults_per_page:.2f} | {tot.runs_cell()} "
                f"| {rat} |")

    def cpu_total(c: CpuRuns) -> Measurement:
        return c.measured(warm).total

    def ratio(a: Measurement, b: Measurement) -> str:
        return f"{a.median / b.median:.2f}x" if a.ok and b.ok and b.median else "-"

    suite.after_rows += [
        f"### Broker CPU per GiB ({names['rdk']}, 1 producer / 1 consumer; CPU-seconds of "
        "one process per GiB of record batches; lower is better)",
        "",
        "| process and copy | page-cache pages | user | sys | user + sys | minor faults per "
        "4 KiB | runs (user + sys) | ÷ the raw copy of its pair |",
        "|---|---|---:|---:|---:|---:|---|---:|",
        cpu_row(cpu["recycled"], raw_cpu["recycled"]),
        cpu_row(raw_cpu["recycled"], None),
        cpu_row(cpu["fresh"], raw_cpu["fresh"]),
        cpu_row(raw_cpu["fresh"], None),
    ]
    if cpu["kg"].runs:
        suite.after_rows.append(cpu_row(cpu["kg"], raw_cpu["recycled"]))
    suite.after_rows += [cpu_row(cpu["fetch"], raw_cpu["egress"]),
                         cpu_row(raw_cpu["egress"], None), ""]

    # End-to-end latency beside its floors.
    def lat_med(d: dict[str, list[float]], q: str) -> float:
        return statistics.median(d[q]) if d[q] else float("nan")

    lat_rows = [
        ("seriatim end-to-end, `log.flush.policy=always` (visible after the group-commit "
         "fdatasync)", lat["always"]),
        ("seriatim end-to-end, `log.flush.policy=always` + `log.flush.syncfs=true` (one "
         "syncfs per group-commit round; opt-in)", lat["syncfs"]),
        ("seriatim end-to-end, `log.flush.policy=never` (Kafka's default)", lat["never"]),
        ("floor: 1 KiB append + fdatasync, back to back, scratch dir ("
         + (f"{statistics.median(base_rate['fsync']):,.0f}" if base_rate["fsync"] else "?")
         + " syncs/s)", base_lat["fsync"]),
        (f"floor: loopback TCP round trip between two processes, 100 B, {lat_rate:,}/s "
         "paced", base_lat["rtt10k"]),
        ("floor: the same round trip at 1,000/s (the e2e producer sends in 1 ms ticks)",
         base_lat["rtt1k"]),
    ]
    suite.after_rows += [
        f"### End-to-end latency at {lat_rate:,} records/s beside its floors (ms; medians "
        "across runs; lower is better)",
        "",
        "| what | p50 | p99 | p99.9 | runs (p99) |",
        "|---|---:|---:|---:|---|",
    ]
    for title, series in lat_rows:
        suite.after_rows.append(
            f"| {title} | " + " | ".join(fmt(lat_med(series, q)) for q in LAT_KEYS)
            + " | " + " / ".join(fmt(v) for v in series["p99"]) + " |")
    suite.after_rows.append("")

    # --- summary vs Kreps, and targets -------------------------------------------------------
    def cell(m: Measurement) -> str:
        return f"{fmt(m.median)}" if m.ok else "n/a"

    def check(g: str, key: str) -> bool | None:
        """Is generator ``g`` >= 2x faster against the sink than its seriatim figure?"""
        s, k = S[g][key], K[g][SCENARIOS[key][1]]
        return k.median >= 2 * s.median if s.ok and k.ok else None

    def judged(key: str) -> tuple[Measurement, str]:
        """The figure a throughput target is judged on, and which generator produced it."""
        if check("kg", key):
            return S["kg"][key], "kafkagen, its sink check passed"
        cands = [(m, g) for g, m in ((names["kg"], S["kg"][key]), (names["rdk"], S["rdk"][key]))
                 if m.ok]
        if not cands:
            return S["rdk"][key], "no figure"
        m, g = max(cands, key=lambda c: c[0].median)
        return m, f"{g}, generator-bound (its sink check failed): a lower bound"

    def gen_cell(g: str, key: str) -> str:
        s, k = S[g][key], K[g][SCENARIOS[key][1]]
        if not (s.ok and k.ok):
            return "n/a"
        verdict = "ok" if check(g, key) else "client-bound" if g == "rdk" else "generator-bound"
        return f"{fmt(k.median)} ({ratio(k, s)}: {verdict})"

    summary = [
        "### Summary beside Kreps' 2014 figures",
        "",
        f"| scenario | Kreps 2014 (3 brokers, 1 GbE) | seriatim, {names['rdk']} (a real "
        f"client) | {names['rdk']} vs sink (needs >= 2x) | seriatim, kafkagen (the broker's "
        "capacity) | kafkagen vs sink (needs >= 2x) | best Redis here | seriatim ÷ Redis |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    reds: dict[str, Measurement | None] = {"p1": Rd["rb_every"], "pall": Rd["rb_every"],
                                           "p3": Rd["rb_every"], "c1": Rd["rb_range"],
                                           "c3": Rd["rb_range"], "pc": None}
    for key, (title, _) in SCENARIOS.items():
        red = reds[key]
        j, _why = judged(key)
        summary.append(
            f"| {title} | {KREPS[key]} | {cell(S['rdk'][key])} | {gen_cell('rdk', key)} | "
            f"{cell(S['kg'][key])} | {gen_cell('kg', key)} | "
            f"{cell(red) if red else '-'} | {ratio(j, red) if red else '-'} |")
    for policy, label in (("always", "flush.policy=always"),
                          ("syncfs", "flush.policy=always, log.flush.syncfs=true"),
                          ("never", "flush.policy=never")):
        summary.append(
            f"| end-to-end latency p50 / p99 / p99.9 at {lat_rate:,}/s | {KREPS['lat']} | "
            + " / ".join(fmt(lat_med(lat[policy], q)) for q in LAT_KEYS)
            + f" ms ({label}) | - | - | - | - | - |")
    for title, key in (("floor: 1 KiB append + fdatasync", "fsync"),
                       (f"floor: loopback round trip at {lat_rate:,}/s", "rtt10k"),
                       ("floor: loopback round trip at 1,000/s", "rtt1k")):
        summary.append(f"| {title} | - | " + " / ".join(
            fmt(lat_med(base_lat[key], q)) for q in LAT_KEYS) + " ms | - | - | - | - | - |")
    summary.append("")
    suite.extra_md += summary

    t = suite.targets

    def judged_target(text: str, key: str, threshold: float,
                      base: Measurement | None = None) -> Target:
        m, why = judged(key)
        tg = target(text, m, threshold, base=base)
        return Target(tg.text, tg.met, f"{tg.detail} ({why})")

    t.append(judged_target("one producer acks=1 >= 1,000,000 records/s", "p1", 1_000_000))
    t.append(judged_target("one producer acks=1 >= 1.5x Redis XADD everysec (redis-benchmark "
                           "-c 50 -P 100, the server's ceiling)", "p1", 1.5,
                           base=Rd["rb_every"]))
    t.append(judged_target("one producer acks=1 >= 1.5x Redis XADD everysec from Python "
                           "(redis-py pipelines)", "p1", 1.5, base=Rd["py_every"]))
    t.append(judged_target("acks=all with group commit >= 500,000 records/s", "pall",
                           500_000))
    t.append(judged_target("one consumer >= 1,500,000 records/s", "c1", 1_500_000))
    floors = ("floors: fdatasync p50 / p99 " + fmt(lat_med(base_lat["fsync"], "p50")) + " / "
              + fmt(lat_med(base_lat["fsync"], "p99")) + " ms, loopback round trip p99 "
              + fmt(lat_med(base_lat["rtt10k"], "p99")) + " ms at 10k/s, "
              + fmt(lat_med(base_lat["rtt1k"], "p99")) + " ms at 1k/s")
    for policy, what in (("always", "always: visible after fsync"),
                         ("syncfs", "always + log.flush.syncfs=true, opt-in"),
                         ("never", "never, Kafka's default")):
        p99 = lat[policy]["p99"]
        t.append(Target(f"end-to-end p99 <= 2 ms at 10k records/s (flush.policy={what})",
                        statistics.median(p99) <= 2.0 if p99 else None,
                        f"p99 {fmt(statistics.median(p99))} ms (runs: "
                        + " / ".join(fmt(v) for v in p99) + f"); {floors}" if p99
                        else "a figure is missing"))
    rec_b, rec_r = cpu_total(cpu["recycled"]), cpu_total(raw_cpu["recycled"])
    fr_b, fr_r = cpu_total(cpu["fresh"]), cpu_total(raw_cpu["fresh"])
    t.append(Target(
        "broker CPU <= 1 s per GiB produced (judged on recycled pages; fresh beside)",
        rec_b.median <= 1.0 if rec_b.ok else None,
        f"recycled pages: {fmt(rec_b.median)} CPU-s/GiB vs raw socket->file "
        f"{fmt(rec_r.median)} ({ratio(rec_b, rec_r)}); fresh pages: {fmt(fr_b.median)} vs "
        f"raw {fmt(fr_r.median)} ({ratio(fr_b, fr_r)})" if rec_b.ok else "a figure is missing"))
    for gk in ("rdk", "kg"):
        for key, (title, sk) in SCENARIOS.items():
            tg = target(f"{names[gk]} >= 2x the result it produced ({title})", K[gk][sk], 2.0,
                        base=S[gk][key])
            if tg.met is False:
                tg.detail += ("; client-bound: this figure measures librdkafka, not the broker"
                              if gk == "rdk" else "; the kafkagen figure is a lower bound")
            t.append(tg)

    # --- notes ---------------------------------------------------------------------------------
    def sys_of(c: CpuRuns) -> str:
        return fmt(c.measured(warm).sys.median)

    fs50 = lat_med(base_lat["fsync"], "p50")
    extra50 = lat_med(lat["always"], "p50") - lat_med(lat["never"], "p50")
    rec_faults = cpu["recycled"].measured(warm).faults_per_page
    gen_names = " and ".join(g for g in (names["rdk"], "kafkagen" if kg_exe else "") if g)
    suite.notes += [
        f"Median of {st.runs} run(s) after {st.warmup} warm-up run(s); every produce run "
        "writes a new topic on one `seriatim serve` process (default config: "
        "`log.flush.policy=always`, i.e. group commit; the high watermark is the flushed "
        "offset), right after deleting the topics of earlier runs that nothing reads any more, "
        "so the page cache stays bounded as on a broker with retention (see the page-cache "
        "note). Consumers of both generators read the same topic, the last one written by "
        f"one {names['rdk']} producer (acks=1), page cache warm. {n:,} records per run (Kreps "
        "used 50 M; the rate does not depend on the total once past warm-up).",
        f"Load generators: {gen_names}, one process per producer/consumer, 100-byte values, "
        "no key. librdkafka (`bench/loadgen.c`): its default partitioner, `linger.ms=5`, "
        "`batch.size=1000000`, `batch.num.messages=100000`, no compression, no idempotence; "
        "consumers `fetch.max.bytes=50 MB`, `max.partition.fetch.bytes=10 MB`, "
        "`fetch.wait.max.ms=100`. kafkagen (`bench/kafkagen.c`) speaks the Kafka protocol "
        "itself over one connection per process, without a client library, so it shows what "
        "the broker can take; librdkafka shows what a real client gets. Each is checked "
        "against the sink (`bench/sink.py`, which decodes and acknowledges produce requests "
        "and serves canned 10 000-record batches to fetches, storing nothing), running beside "
        "the broker, right after the seriatim runs it bounds (a generator's speed, too, "
        "depends on the state of the machine's memory): a figure whose "
        "generator is not >= 2x faster against the sink is bounded by that generator "
        "('client-bound' for librdkafka). acks=all is checked against the acks=1 sink run (the "
        "sink answers both alike); the throughput targets are judged on kafkagen's figure when "
        "its check passes, otherwise on the larger figure, marked as a lower bound.",
        "Everything shares 2 cores: the load generator's threads, the broker, Redis and "
        "redis-benchmark compete for the CPU, so these are 'server plus load generator' "
        "figures. The three-producer and three-consumer runs have more client processes "
        "than cores.",
        f"Latency: {lat_rate:,} records/s for {lat_seconds} s per run (10 records per 1 ms "
        "tick, confluent-kafka, `linger.ms=0`); p50/p99/p99.9 per run, medians across runs "
        "(p50 runs: " + " / ".join(fmt(v) for v in lat["always"]["p50"]) + "; p99.9 runs: "
        + " / ".join(fmt(v) for v in lat["always"]["p999"]) + " ms). Its floors, measured "
        f"right before the `always` runs, {base_seconds:g} s per run: a 1 KiB `os.write` + "
        "`os.fdatasync` loop on the scratch dir (what one group commit costs at the least), "
        "and a 100-byte "
        "request/response between two Python processes over loopback (blocking sockets, "
        "TCP_NODELAY), one message every 100 µs and every 1 ms with the processes sleeping in "
        "between, as the broker does between the producer's ticks.",
        f"Raw rows move the same number of bytes as the log holds for {n:,} records "
        f"({bpr:.1f} bytes per record on disk) and are converted to records/s at that size. "
        "CPU per GiB: the broker's utime and stime over the run (read when every worker is "
        "ready and after the last one finished) divided by the record-batch bytes stored "
        "(produce) or fetched (consume); the raw copies count only the copying process's own "
        "CPU.",
        "Page-cache pages and CPU: on this VM (KVM guest) the first write into guest RAM the "
        "host has not backed costs ~1.5-4 s of kernel CPU per GiB (the hypervisor faults each "
        "page in), against ~0.2 s into pages freed a moment ago, and virtio-balloon free page "
        "reporting hands freed pages back to the host ~2 s after they are freed. Letting the "
        "page cache grow run after run (earlier versions of this bench kept every topic) "
        "makes later runs pay it: by hand, 22 kafkagen runs of 210 MiB into new topics ran at "
        "~7.3M records/s with ~1.1 s/GiB of broker sys until ~4 GiB had been written, then at "
        "2.5-3M with ~4 s/GiB; deleting each run's topic before the next kept all 24 runs "
        "at ~7.5M. Hence the deletes, and produce CPU as two like-for-like pairs: *recycled* "
        f"(the {names['rdk']} 1-producer runs, right after earlier topics were deleted, whose "
        "files seriatim unlinks before answering DeleteTopics / a file written right after "
        f"unlinking the previous one) -- sys {sys_of(cpu['recycled'])} broker, "
        f"{sys_of(raw_cpu['recycled'])} raw -- and *fresh* (a new topic / a new kept file, "
        f"nothing freed for {FRESH_PAUSE_S:g} s before) -- sys {sys_of(cpu['fresh'])} broker, "
        f"{sys_of(raw_cpu['fresh'])} raw (CPU-s/GiB). The target is judged on the recycled "
        "pair: a broker that has run for a while writes into pages its page cache evicted. "
        f"With {raw_bytes / MIB:,.0f} MiB per run, how much the fresh pair pays depends on "
        "whether memory some process freed shortly before is at hand: runs of this bench have "
        "given fresh about equal to recycled, and fresh about 3x recycled, for the broker and "
        "the raw copy alike (by hand: 1.3 GiB into a new file 1.7-2.5 s/GiB of sys, right "
        "after unlinking one 0.4-1.0). Earlier versions of this bench set the broker's "
        "figure (first runs, page cache growing) against a raw copy into recycled pages: "
        "1.46 vs 0.35 = 4.2x.",
        "Minor faults per 4 KiB count the memory a process touched anew per 4 KiB copied "
        "(page-cache pages filled by write() are not counted): ~0 means the copy ran in reused "
        f"memory; the broker produced at {rec_faults:.2f} per 4 KiB here. Before the copy-free "
        "produce path, a just-started broker faulted ~1.2-2 pages per 4 KiB produced and spent "
        "~1.1 s/GiB in the kernel (glibc served its ~1 MB request buffers with mmap and "
        "unmapped them on free) until a larger free raised glibc's mmap threshold. Fetch reads "
        "page-cached data, so the page-cache state does not matter for it; its faults per 4 KiB "
        f"({cpu['fetch'].measured(warm).faults_per_page:.2f}) show how much of what it sends "
        "it first copies into new memory (the raw copy uses `os.sendfile`).",
        "What bounds end-to-end latency: with `flush.policy=always` a record is visible only "
        "after the group-commit fdatasync that covers it; p50 / p99 go from "
        f"{fmt(lat_med(lat['never'], 'p50'))} / {fmt(lat_med(lat['never'], 'p99'))} ms "
        f"(never) to {fmt(lat_med(lat['always'], 'p50'))} / "
        f"{fmt(lat_med(lat['always'], 'p99'))} ms (always), while one 1 KiB append + "
        f"fdatasync takes {fmt(fs50)} / {fmt(lat_med(base_lat['fsync'], 'p99'))} ms (p50 / "
        "p99) right before. "
        + (f"The p50 difference is {extra50 / fs50:.0f}x one sync (a record that arrives "
           "during a sync waits for at most that one and its own): most of it is the wait "
           "for a group commit to start and for its offsets to reach the waiting fetch, not "
           "the disk. " if extra50 > 3 * fs50 else
           "The difference is about one or two syncs (a record that arrives during a sync "
           "waits for that one and then its own): the disk bounds it. "
           if not (math.isnan(extra50) or math.isnan(fs50)) else "")
        + "A loopback round trip between two processes costs p99 "
        f"{fmt(lat_med(base_lat['rtt10k'], 'p99'))} ms at {lat_rate:,}/s and "
        f"{fmt(lat_med(base_lat['rtt1k'], 'p99'))} ms at 1,000/s (idle wake-ups); the rest "
        "of the `never` figure is the broker and the two clients.",
        *([LOADGEN_BATCH_NOTE] if _loadgen_waits_for_full_batches() else []),
        "Redis: Debian redis-server on loopback, no RDB. redis-benchmark (C, pipelined) is the "
        f"server's ceiling and sends {n:,} XADDs to one stream; redis-py + hiredis "
        f"({n_py:,} XADDs round-robin over 6 streams, pipelines of 1 000) is what a Python "
        "producer gets. XRANGE via redis-benchmark rereads the same 100 entries; XREAD via "
        "redis-py reads the stream sequentially.",
    ]
    return suite
