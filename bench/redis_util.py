"""Start and stop a throw-away redis-server on a free loopback port (the broker baseline).

``redis_server(persistence)`` starts Debian's ``redis-server`` bound to 127.0.0.1 with no RDB
snapshots and either no AOF (``"none"``) or AOF with ``appendfsync everysec`` (``"everysec"``)
in a temporary directory, waits until it answers, and stops it by its PID (SIGTERM, then
SIGKILL) when the block ends. :func:`unavailable` says why the Redis baseline must be skipped
(no redis-server binary, or no redis-py client), or returns "".
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port, scratch_dir, stop_process, wait_for_port


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int
    data_dir: Path


def unavailable() -> str:
    """Why the Redis baseline cannot run here, or ""."""
    if shutil.which("redis-server") is None:
        return ("redis-server is not installed "
                "(Debian: `apt-get install -y redis-server redis-tools`)")
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis-py client is not installed (`pip install '.[bench]'`)"
    return ""


def redis_benchmark_path() -> str | None:
    return shutil.which("redis-benchmark")


@contextmanager
def redis_server(persistence: str = "everysec") -> Iterator[RedisServer]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(unavailable())
    port = free_port()
    with scratch_dir("redis") as d:
        cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--dir", str(d), "--daemonize", "no", "--protected-mode", "yes",
               "--loglevel", "warning", "--logfile", str(d / "redis.log")]
        if persistence == "none":
            cmd += ["--appendonly", "no"]
        elif persistence in ("everysec", "always"):
            cmd += ["--appendonly", "yes", "--appendfsync", persistence]
        else:
            raise ValueError(f"unknown persistence {persistence!r}")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 10.0, proc)
            yield RedisServer(port, proc.pid, d)
        finally:
            stop_process(proc)


def redis_benchmark_xadd(port: int, n: int, value: bytes, pipeline: int = 100,
                         clients: int = 50) -> float:
    """XADD rate (msgs/s) from Debian's redis-benchmark (C): the server-side ceiling."""
    exe = redis_benchmark_path()
    if exe is None:
        raise RuntimeError("redis-benchmark is not installed (Debian package redis-tools)")
    out = subprocess.run(
        [exe, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
         "-n", str(n), "-q", "--csv", "XADD", "rb-stream", "*", "f", value.decode()],
        capture_output=True, text=True, timeout=300, check=True).stdout
    # --csv: header line, then "XADD rb-stream * f ...","<rps>",...
    for line in out.splitlines():
        if line.startswith('"XADD'):
            return float(line.split('","')[1].strip('"'))
    raise RuntimeError(f"could not parse redis-benchmark output: {out!r}")
