"""Kreps' 2014 benchmark on one machine: ``seriatim serve`` beside Redis Streams, raw disk and
loopback TCP, with a load generator checked against a sink.

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
  group commit.

The load generator is a small C program on librdkafka (``bench/loadgen.c``, built into a temp
dir; Debian ``librdkafka-dev``), one process per producer or consumer; without a compiler or
librdkafka-dev it falls back to confluent-kafka (``bench/loadgen.py``). It is checked against
``bench/sink.py``, a Kafka server that discards: the load generator must be >= 2x faster than
the seriatim figure it produced, or that figure measures the client. The latency pair is
confluent-kafka (10k records/s is far below its ceiling).

Baselines in the same run: Redis Streams (XADD with AOF off and with ``appendfsync everysec``;
redis-benchmark in C, pipelined, is the server's ceiling; redis-py + hiredis pipelines are what
a Python producer gets; XREAD / XRANGE to consume); raw disk (the same bytes written in 1 MiB
``os.write`` calls + one fdatasync) and loopback TCP (``sendfile`` of a page-cached file into a
``recv_into`` loop).

The broker's own cost: utime + stime of the ``seriatim serve`` process (/proc/PID/stat) before
and after each produce and consume run, per GiB of record batches stored or fetched, beside a
raw copy of the same bytes in the same run: socket -> file (``recv_into`` + ``os.write`` +
fdatasync) and file -> socket (``os.sendfile``), each process timing its own CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import redis_util, workers
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


def _cmd_produce(exe: str | None, bootstrap: str, topic: str, n: int, acks: str) -> list[str]:
    if exe:
        return [exe, "produce", bootstrap, topic, str(n), acks]
    return workers.py_loadgen("produce", "--bootstrap", bootstrap, "--topic", topic,
                              "--n", str(n), "--acks", "-1" if acks == "all" else acks)


def _cmd_consume(exe: str | None, bootstrap: str, topic: str, n: int, parts: str) -> list[str]:
    if exe:
        return [exe, "consume", bootstrap, topic, str(n), parts]
    return workers.py_loadgen("consume", "--bootstrap", bootstrap, "--topic", topic,
                              "--n", str(n), "--partitions", parts)


SPLIT3 = ["0,1", "2,3", "4,5"]
ALL = "0,1,2,3,4,5"


def _check(results: list[dict[str, Any]], n: int, what: str) -> tuple[float, float]:
    items, secs = workers.aggregate(results)
    if items < n:
        errs = [r.get("errors") for r in results]
        raise RuntimeError(f"{what}: {items} of {n} records ({errs})")
    return items, secs


def _cpu_measurement(label: str, pairs: list[tuple[float, int]], note: str = "") -> Measurement:
    m = Measurement(label, "CPU-s/GiB", note=note, lower_is_better=True)
    m.values = [cpu / (b / GIB) for cpu, b in pairs if b]
    return m


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
    """socket -> file by a child process; this process sendfile()s ``src`` to it."""
    proc, port = _rawcopy("ingest", "--out", str(dst))
    try:
        with socket.create_connection(("127.0.0.1", port)) as s, open(src, "rb") as f:
            s.sendfile(f)
        out, _ = proc.communicate(timeout=120)
        res: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return res
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        dst.unlink(missing_ok=True)


# --- Redis --------------------------------------------------------------------------------------


def _redis_py_produce(port: int, n: int, prefix: str) -> tuple[float, float]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        r.ping()
        streams = [f"{prefix}-{p}" for p in range(PARTITIONS)]
        fields = {b"v": VALUE}
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
            reply = r.xread(ids, count=1000)
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


# --- the suite ----------------------------------------------------------------------------------


def run(settings: Settings) -> Suite:
    quick = settings.quick
    suite = Suite("kreps", "Kreps' 2014 scenarios: `seriatim serve` vs Redis Streams, disk, "
                  "loopback", "python -m bench kreps" + (" --quick" if quick else ""))
    st = Settings(quick, runs=1 if quick else 3, warmup=1)
    n = settings.scale(2_000_000, 300_000)
    n_py = settings.scale(500_000, 100_000)
    lat_seconds = settings.scale(5, 2)
    lat_rate = 10_000

    def measure(label: str, unit: str, case: Callable[[], tuple[float, float]], **kw: Any
                ) -> Measurement:
        try:
            return _measure(label, unit, case, st, **kw)
        except Exception as exc:  # a failed scenario is a row that says why
            reason = f"{type(exc).__name__}: {exc}"[:300]
            print(f"    {label}: FAILED: {reason}", flush=True)
            return skipped(label, unit, reason)

    S: dict[str, Measurement] = {}
    K: dict[str, Measurement] = {}  # load generator against the sink
    cpu_prod: list[tuple[float, int]] = []
    cpu_fetch: list[tuple[float, int]] = []
    bytes_per_record = 0.0
    lat: dict[str, list[float]] = {"p50": [], "p99": [], "p999": [], "n": []}
    lat_never: dict[str, list[float]] = {"p50": [], "p99": [], "p999": [], "n": []}

    with workers.c_loadgen() as exe:
        gen = ("C loadgen on librdkafka " if exe else "confluent-kafka ")
        with workers.seriatim() as srv:
            print(f"  [seriatim serve at {srv.bootstrap}, pid {srv.pid}; load: {gen}]",
                  flush=True)
            seq = iter(range(10**6))
            last: dict[str, str] = {}

            def produce_case(procs: int, acks: str, cpu: bool = False
                             ) -> tuple[float, float]:
                nonlocal bytes_per_record
                topic = f"p{next(seq)}"
                workers.create_topic(srv.bootstrap, topic)
                c0 = workers.cpu_seconds(srv.pid)
                res = workers.run_workers([_cmd_produce(exe, srv.bootstrap, topic,
                                                        n // procs, acks)] * procs)
                c1 = workers.cpu_seconds(srv.pid)
                items, secs = _check(res, n // procs * procs, "produce")
                size = _log_bytes(srv.data, topic)
                bytes_per_record = size / items
                if cpu:
                    cpu_prod.append((c1 - c0, size))
                    last["full"] = topic
                return items, secs

            S["p1"] = measure("seriatim, 1 producer, acks=1", "records/s",
                              lambda: produce_case(1, "1", cpu=True))
            S["pall"] = measure("seriatim, 1 producer, acks=all (group commit)", "records/s",
                                lambda: produce_case(1, "all"))
            S["p3"] = measure("seriatim, 3 producers (processes), acks=1", "records/s",
                              lambda: produce_case(3, "1"))

            def consume_case(procs: int) -> tuple[float, float]:
                topic = last["full"]
                parts = [ALL] if procs == 1 else SPLIT3
                ends = workers.partition_ends(srv.bootstrap, topic)
                counts = [sum(ends[int(x)] for x in pp.split(",")) for pp in parts]
                c0 = workers.cpu_seconds(srv.pid)
                res = workers.run_workers([_cmd_consume(exe, srv.bootstrap, topic, k, pp)
                                           for k, pp in zip(counts, parts, strict=True)])
                c1 = workers.cpu_seconds(srv.pid)
                if procs == 1:
                    cpu_fetch.append((c1 - c0, _log_bytes(srv.data, topic)))
                return _check(res, sum(counts), "consume")

            if "full" in last:
                S["c1"] = measure("seriatim, 1 consumer", "records/s",
                                  lambda: consume_case(1))
                S["c3"] = measure("seriatim, 3 consumers (processes, 2 partitions each)",
                                  "records/s", lambda: consume_case(3))
            else:
                S["c1"] = skipped("seriatim, 1 consumer", "records/s", "produce failed")
                S["c3"] = skipped("seriatim, 3 consumers", "records/s", "produce failed")

            def pc_case() -> tuple[float, float]:
                topic = f"pc{next(seq)}"
                workers.create_topic(srv.bootstrap, topic)
                res = workers.run_workers([_cmd_consume(exe, srv.bootstrap, topic, n, ALL),
                                           _cmd_produce(exe, srv.bootstrap, topic, n, "1")])
                cons, prod = res
                if cons["n"] < n:
                    raise RuntimeError(f"consumer got {cons['n']} of {n}")
                return n, cons["t1"] - min(cons["t0"], prod["t0"])

            S["pc"] = measure("seriatim, 1 producer + 1 consumer at once", "records/s",
                              pc_case)

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
                    for k in ("p50", "p99", "p999"):
                        into[k].append(cons[k])
                    into["n"].append(cons["n"])
                    print(f"      latency p50 {cons['p50']:.2f} p99 {cons['p99']:.2f} "
                          f"p99.9 {cons['p999']:.2f} max {cons['max']:.2f} ms; "
                          f"rate {prod['n'] / (prod['t1'] - prod['t0']):,.0f}/s", flush=True)
                    return 1, cons["p99"] / 1000
                return latency_case

            latency_case = latency_case_on(srv.bootstrap, lat)
            S["lat"] = measure("seriatim, end-to-end p99 at 10k records/s", "ms",
                               latency_case, lower_is_better=True)

        # The same latency pair under flush.policy=never (Kafka's default: no fsync before a
        # record is visible), so the figure compares with Kreps' (Kafka did not fsync either).
        with workers.seriatim(["-c", "log.flush.policy=never"]) as srv_never:
            S["lat_never"] = measure(
                "seriatim (flush.policy=never), end-to-end p99 at 10k records/s", "ms",
                latency_case_on(srv_never.bootstrap, lat_never), lower_is_better=True)

        # The load generator alone, against a server that discards.
        with workers.sink() as snk:
            print(f"  [sink at {snk.bootstrap}]", flush=True)

            def sink_produce(procs: int) -> tuple[float, float]:
                res = workers.run_workers([_cmd_produce(exe, snk.bootstrap, "s", n // procs,
                                                        "1")] * procs)
                return _check(res, n // procs * procs, "sink produce")

            def sink_consume(procs: int) -> tuple[float, float]:
                parts = [ALL] if procs == 1 else SPLIT3
                per = n // len(parts)
                res = workers.run_workers([_cmd_consume(exe, snk.bootstrap, "s", per, pp)
                                           for pp in parts])
                return _check(res, per * len(parts), "sink consume")

            K["p1"] = measure(f"{gen}1 producer vs sink (discards)", "records/s",
                              lambda: sink_produce(1))
            K["p3"] = measure(f"{gen}3 producers vs sink", "records/s",
                              lambda: sink_produce(3))
            K["c1"] = measure(f"{gen}1 consumer vs sink (canned batches)", "records/s",
                              lambda: sink_consume(1))
            K["c3"] = measure(f"{gen}3 consumers vs sink", "records/s",
                              lambda: sink_consume(3))

    # Raw disk and loopback, and the raw copies for the CPU ratio.
    bpr = bytes_per_record or 108.0
    raw_bytes = int(n * bpr)
    R: dict[str, Measurement] = {}
    ingest_pairs: list[tuple[float, int]] = []
    egress_pairs: list[tuple[float, int]] = []
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
            egress_pairs.append((res["cpu"], int(res["bytes"])))
            return res["bytes"] / bpr, res["recv_seconds"]

        def ingest_case() -> tuple[float, float]:
            res = raw_ingest(src, d / "dst.bin")
            ingest_pairs.append((res["cpu"], int(res["bytes"])))
            return res["bytes"] / bpr, res["seconds"]

        R["tcp"] = measure("loopback TCP: sendfile -> recv_into (same bytes)", "records/s",
                           egress_case)
        R["ingest"] = measure("raw socket -> file: recv_into + write + fdatasync",
                              "records/s", ingest_case)

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
                        lambda p=rs.port: (_redis_benchmark(p, n, *xadd, clients=50,
                                                            pipeline=100), 1.0))
                    if tag == "every":
                        Rd["rb1_every"] = measure(
                            f"Redis XADD, {aof}: redis-benchmark -P 100 -c 1 (one producer)",
                            "records/s", lambda p=rs.port: (_redis_benchmark(
                                p, n, *xadd, clients=1, pipeline=100), 1.0))
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
                        lambda p=rs.port, s=lastp: _redis_py_consume(p, n_py, s))
                    if have_rb:
                        Rd["rb_range"] = measure(
                            "Redis XRANGE COUNT 100: redis-benchmark -P 10 -c 50", "records/s",
                            lambda p=rs.port, s=lastp: (_redis_benchmark(
                                p, max(n // 100, 1000), "XRANGE", f"{s}-0", "-", "+",
                                "COUNT", "100", clients=50, pipeline=10) * 100, 1.0))
                    else:
                        Rd["rb_range"] = skipped("redis-benchmark XRANGE", "records/s", no_rb)

    # --- rows -------------------------------------------------------------------------------
    suite.rows += [
        Row(f"One producer, acks=1: {n:,} records of 100 bytes, 6 partitions", S["p1"],
            [Rd["rb1_every"], Rd["rb_every"], Rd["rb_none"], Rd["py_every"], Rd["py_none"],
             R["disk"], R["tcp"], K["p1"]]),
        Row("One producer, acks=all (fdatasync group commit before the ack)", S["pall"],
            [Rd["rb_every"], R["disk"], K["p1"]]),
        Row("Three producers (3 processes), acks=1", S["p3"],
            [Rd["rb_every"], Rd["rb_none"], K["p3"]]),
        Row(f"One consumer: {n:,} records from 6 partitions (page cache warm)", S["c1"],
            [Rd["py_read"], Rd["rb_range"], R["tcp"], K["c1"]]),
        Row("Three consumers (3 processes, 2 partitions each)", S["c3"],
            [Rd["rb_range"], K["c3"]]),
        Row("One producer and one consumer at once (until the consumer has every record)",
            S["pc"], [K["p1"]]),
    ]
    lat_m = {k: Measurement(f"end-to-end {k}", "ms", lower_is_better=True, values=v)
             for k, v in lat.items() if k != "n"}
    lat_n = {k: Measurement(f"end-to-end {k}", "ms", lower_is_better=True, values=v)
             for k, v in lat_never.items() if k != "n"}
    cpu_p = _cpu_measurement("seriatim serve, per GiB produced (1 producer, acks=1)", cpu_prod)
    cpu_f = _cpu_measurement("seriatim serve, per GiB fetched (1 consumer)", cpu_fetch)
    raw_in = _cpu_measurement("raw socket -> file (recv_into + os.write + fdatasync)",
                              ingest_pairs)
    raw_out = _cpu_measurement("raw file -> socket (os.sendfile)", egress_pairs)
    suite.rows += [
        Row("Broker CPU per GiB produced (utime+stime of the broker; lower is better)", cpu_p,
            [raw_in]),
        Row("Broker CPU per GiB fetched (lower is better)", cpu_f, [raw_out]),
    ]

    # --- summary vs Kreps, and targets -------------------------------------------------------
    def cell(m: Measurement) -> str:
        return f"{fmt(m.median)}" if m.ok else "n/a"

    def ratio(a: Measurement, b: Measurement) -> str:
        return f"{a.median / b.median:.2f}x" if a.ok and b.ok and b.median else "-"

    summary = [
        "### Summary beside Kreps' 2014 figures",
        "",
        "| scenario | Kreps 2014 (3 brokers, 1 GbE) | seriatim here | load generator vs sink "
        "(must be >= 2x) | best Redis here | seriatim ÷ Redis |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows_sum = [
        ("1 producer, acks=1", "p1", "p1", Rd["rb_every"]),
        ("1 producer, acks=all", "pall", "p1", Rd["rb_every"]),
        ("3 producers", "p3", "p3", Rd["rb_every"]),
        ("1 consumer", "c1", "c1", Rd["rb_range"]),
        ("3 consumers", "c3", "c3", Rd["rb_range"]),
        ("producer + consumer", "pc", "p1", None),
    ]
    for title, key, kkey, red in rows_sum:
        s, k = S[key], K[kkey]
        summary.append(
            f"| {title} | {KREPS[key]} | {cell(s)} | {cell(k)} ({ratio(k, s)}) | "
            f"{cell(red) if red else '-'} | {ratio(s, red) if red else '-'} |")
    summary.append(
        f"| end-to-end latency p50 / p99 / p99.9 at {lat_rate:,}/s | {KREPS['lat']} | "
        + " / ".join(f"{fmt(lat_m[k].median)}" if lat_m[k].ok else "n/a"
                     for k in ("p50", "p99", "p999")) + " ms (flush.policy=always) | - | - | - |")
    summary.append(
        f"| end-to-end latency p50 / p99 / p99.9 at {lat_rate:,}/s | {KREPS['lat']} | "
        + " / ".join(f"{fmt(lat_n[k].median)}" if lat_n[k].ok else "n/a"
                     for k in ("p50", "p99", "p999")) + " ms (flush.policy=never) | - | - | - |")
    summary.append("")
    suite.extra_md += summary

    t = suite.targets
    t.append(target("one producer acks=1 >= 1,000,000 records/s", S["p1"], 1_000_000))
    t.append(target("one producer acks=1 >= 1.5x Redis XADD everysec (redis-benchmark "
                    "-c 50 -P 100, the server's ceiling)", S["p1"], 1.5, base=Rd["rb_every"]))
    t.append(target("one producer acks=1 >= 1.5x Redis XADD everysec from Python "
                    "(redis-py pipelines)", S["p1"], 1.5, base=Rd["py_every"]))
    t.append(target("acks=all with group commit >= 500,000 records/s", S["pall"], 500_000))
    t.append(target("one consumer >= 1,500,000 records/s", S["c1"], 1_500_000))
    for policy, m in (("always: visible after fsync", lat_m), ("never, Kafka's default", lat_n)):
        p99 = m["p99"]
        t.append(Target(f"end-to-end p99 <= 2 ms at 10k records/s (flush.policy={policy})",
                        p99.median <= 2.0 if p99.ok else None,
                        f"p99 {fmt(p99.median)} ms (runs: "
                        + " / ".join(fmt(v) for v in p99.values) + ")" if p99.ok
                        else "a figure is missing"))
    t.append(Target("broker CPU <= 1 s per GiB produced", cpu_p.median <= 1.0 if cpu_p.ok
                    else None, f"{fmt(cpu_p.median)} CPU-s/GiB; raw socket->file "
                    f"{fmt(raw_in.median)} ({ratio(cpu_p, raw_in)})" if cpu_p.ok
                    else "a figure is missing"))
    for key, kkey, what in (("p1", "p1", "1 producer"), ("pall", "p1", "acks=all"),
                            ("p3", "p3", "3 producers"), ("c1", "c1", "1 consumer"),
                            ("c3", "c3", "3 consumers"), ("pc", "p1", "producer+consumer")):
        t.append(target(f"load generator >= 2x the result ({what})", K[kkey], 2.0,
                        base=S[key]))

    # --- notes ---------------------------------------------------------------------------------
    suite.notes += [
        f"Median of {st.runs} run(s) after {st.warmup} warm-up run(s); every produce run "
        f"writes a fresh topic on one `seriatim serve` process (default config: "
        "`log.flush.policy=always`, i.e. group commit; the high watermark is the flushed "
        "offset). Consumers read the last 1-producer acks=1 topic, page cache warm. "
        f"{n:,} records per run (Kreps used 50 M; the rate does not depend on the total "
        "once past warm-up).",
        f"Load generator: {gen.strip()}, one process per producer/consumer, 100-byte values, "
        "no key, librdkafka's default partitioner, `linger.ms=5`, `batch.size=1000000`, "
        "`batch.num.messages=100000`, no compression, no idempotence; consumers "
        "`fetch.max.bytes=50 MB`, `max.partition.fetch.bytes=10 MB`, `fetch.wait.max.ms=100`. "
        "The sink (`bench/sink.py`) decodes and acknowledges produce requests and serves "
        "canned 10 000-record batches to fetches, without storing anything.",
        "Everything shares 2 cores: the load generator's threads, the broker, Redis and "
        "redis-benchmark compete for the CPU, so these are 'server plus load generator' "
        "figures. The three-producer and three-consumer runs have more client processes "
        "than cores.",
        f"Latency: {lat_rate:,} records/s for {lat_seconds} s per run (10 records per 1 ms "
        "tick, confluent-kafka, `linger.ms=0`); p50/p99/p99.9 per run, medians across runs "
        "(p50 runs: " + " / ".join(fmt(v) for v in lat["p50"]) + "; p99.9 runs: "
        + " / ".join(fmt(v) for v in lat["p999"]) + " ms).",
        f"Raw rows move the same number of bytes as the log holds for {n:,} records "
        f"({bpr:.1f} bytes per record on disk) and are converted to records/s at that size. "
        "CPU per GiB: broker utime+stime over the run divided by the record-batch bytes "
        "stored (produce) or fetched (consume); the raw copies count only the copying "
        "process's own CPU.",
        "Redis: Debian redis-server on loopback, no RDB. redis-benchmark (C, pipelined) is the "
        f"server's ceiling and sends {n:,} XADDs to one stream; redis-py + hiredis "
        f"({n_py:,} XADDs round-robin over 6 streams, pipelines of 1 000) is what a Python "
        "producer gets. XRANGE via redis-benchmark rereads the same 100 entries; XREAD via "
        "redis-py reads the stream sequentially.",
    ]
    return suite
