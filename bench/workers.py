"""Start load-generator workers (bench/loadgen.py) and servers as child processes.

:func:`run_workers` starts N workers, waits until each has printed ``ready`` (connected,
metadata fetched), releases them all at once and collects their JSON results. Every child is
stopped by its own PID in a ``finally`` (SIGTERM, then SIGKILL) and reaped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from bench.common import free_port, scratch_dir, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def py_loadgen(*args: str) -> list[str]:
    """The command of a Python (confluent-kafka) worker."""
    return [sys.executable, "-m", "bench.loadgen", *args]


def _build(src: Path, out: Path, flag_sets: list[list[str]], libs: tuple[str, ...] = ()
           ) -> str | None:
    """Compile ``src`` into ``out`` with the first set of flags that works; None (and the
    compiler's complaint printed) when none does."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print(f"    note: no C compiler; {src.name} unavailable", flush=True)
        return None
    err = ""
    for flags in flag_sets:
        proc = subprocess.run([cc, *flags, "-o", str(out), str(src), *libs],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return str(out)
        err = proc.stderr
    print(f"    note: building {src.name} failed: {err[-500:]}", flush=True)
    return None


@contextmanager
def c_loadgen() -> Iterator[str | None]:
    """Build bench/loadgen.c against librdkafka into a temp dir; yield its path (or None,
    with the reason printed, when there is no compiler or no librdkafka-dev)."""
    if not Path("/usr/include/librdkafka/rdkafka.h").exists():
        print("    note: no librdkafka-dev; C load generator unavailable", flush=True)
        yield None
        return
    with scratch_dir("cloadgen") as d:
        yield _build(ROOT / "bench" / "loadgen.c", d / "loadgen", [["-O2"]], ("-lrdkafka",))


#: bench/kafkagen.c: the Kafka protocol spoken directly over one connection, no client
#: library in between: the broker's capacity rather than a client's (checked against the sink).
KAFKAGEN_SRC = ROOT / "bench" / "kafkagen.c"


@contextmanager
def kafkagen() -> Iterator[str | None]:
    """Build bench/kafkagen.c (no dependencies; SSE4.2 for its CRC32C when the compiler
    takes it) into a temp dir; yield its path, or None with the reason printed."""
    if not KAFKAGEN_SRC.exists():
        print(f"    note: {KAFKAGEN_SRC.name} is missing; kafkagen unavailable", flush=True)
        yield None
        return
    with scratch_dir("kafkagen") as d:
        yield _build(KAFKAGEN_SRC, d / "kafkagen", [["-O2", "-msse4.2"], ["-O2"]])


def run_workers(cmds: list[list[str]], timeout_s: float = 300.0,
                before_go: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Start every command, wait for each ``ready``, call ``before_go`` (e.g. to delete a
    topic or read the broker's CPU clock right before the measured work), send ``go`` to
    all, and return their JSON results in order."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for cmd in cmds:
            procs.append(subprocess.Popen(
                cmd, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                env=_env()))
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                err = p.stderr.read() if p.stderr else ""
                raise RuntimeError(f"loadgen worker failed to start: {line!r} {err[-1500:]}")
        if before_go is not None:
            before_go()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout_s)
            if p.returncode != 0:
                raise RuntimeError(f"loadgen worker exited {p.returncode}: {err[-1500:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            stop_process(p)  # type: ignore[arg-type]


def aggregate(results: list[dict[str, Any]]) -> tuple[float, float]:
    """(items, seconds) over all workers: first start to last end."""
    n = sum(r["n"] for r in results)
    return n, max(r["t1"] for r in results) - min(r["t0"] for r in results)


# --- servers ----------------------------------------------------------------------------------


class ProcTimes(NamedTuple):
    user: float  # CPU seconds in user mode, all threads
    sys: float  # CPU seconds in the kernel, all threads
    minflt: int  # minor page faults: pages of memory touched for the first time (or again)


def proc_times(pid: int) -> ProcTimes:
    """utime, stime (10 ms ticks) and minflt of ``pid`` from /proc/PID/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()  # fields[0] is field 3 (state) of proc(5)
    return ProcTimes(int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK, int(fields[7]))


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) from /proc/PID/stat."""
    t = proc_times(pid)
    return t.user + t.sys


def rss_mib(pid: int) -> float:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1]) / 1024
    return float("nan")


def serve_cmd() -> list[str]:
    exe = shutil.which("seriatim", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "seriatim.cli.main"]


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, data: Path) -> None:
        self.proc = proc
        self.port = port
        self.data = data

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_seriatim(data: Path, port: int, extra: list[str] | None = None,
                   log: Path | None = None) -> tuple[subprocess.Popen[bytes], float]:
    """Spawn ``seriatim serve``; return (proc, seconds until the first accepted connect)."""
    cmd = [*serve_cmd(), "serve", "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "-c", f"log.dirs={data}", "-c", "num.partitions=6", "--log-level", "warning",
           *(extra or [])]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    if log:
        out.close()  # type: ignore[union-attr]
    try:
        wait_for_port(port, 120.0, proc, interval_s=0.001)
    except BaseException:
        stop_process(proc)
        raise
    return proc, time.perf_counter() - t0


@contextmanager
def seriatim(extra: list[str] | None = None) -> Iterator[Server]:
    port = free_port()
    with scratch_dir("broker") as d:
        proc, _ = start_seriatim(d / "data", port, extra, d / "serve.log")
        try:
            yield Server(proc, port, d / "data")
        finally:
            stop_process(proc)
            if proc.returncode not in (0, -15):
                print(f"    note: seriatim serve exited with {proc.returncode}: "
                      + (d / "serve.log").read_text(errors="replace")[-1500:], flush=True)


@contextmanager
def sink(partitions: int = 6) -> Iterator[Server]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(port),
                             "--partitions", str(partitions)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30.0, proc)
        yield Server(proc, port, Path("."))
    finally:
        stop_process(proc)


def create_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=60)[topic].result(60)


def delete_topic(bootstrap: str, topic: str) -> None:
    """DeleteTopics; seriatim unlinks the partition directories before it answers."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic], request_timeout=60)[topic].result(60)


def partition_ends(bootstrap: str, topic: str, partitions: int = 6) -> list[int]:
    """The high watermark of each partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-wm"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        c.close()
