"""Raw byte movers, the floor for the broker's CPU cost and the machine's own ceilings.

    python -m bench.rawcopy ingest --port P --out FILE      # socket -> file (recv_into + write)
    python -m bench.rawcopy egress --port P --file FILE [--mode sendfile|read]  # file -> socket
    python -m bench.rawcopy echo --port P                   # echoes whatever it receives

ingest and egress accept one loopback connection, move the bytes, fdatasync (ingest), and
print one JSON line with the bytes moved, their own CPU seconds (``user`` and ``sys`` from
getrusage, ``cpu`` their sum) and minor page faults (``minflt``) between accept and the end,
i.e. what moving those bytes cost this process. ``echo`` is the far end of
:func:`round_trips` (a loopback request/response between two processes);
:func:`fdatasync_latency` times small appends + fdatasync in the calling process. Both are
latency floors for the broker's end-to-end figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import time

CHUNK = 1 << 20


def _cpu() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _spent(c0: tuple[float, float, int], t0: float, total: int) -> dict[str, float]:
    u1, s1, f1 = _cpu()
    user, sys_ = u1 - c0[0], s1 - c0[1]
    return {"bytes": total, "user": user, "sys": sys_, "cpu": user + sys_,
            "minflt": f1 - c0[2], "seconds": time.perf_counter() - t0}


def _accept(port: int) -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    srv.close()
    return conn


def ingest(port: int, out: str) -> dict[str, float]:
    conn = _accept(port)
    c0, t0 = _cpu(), time.perf_counter()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = 0
    try:
        while True:
            k = conn.recv_into(buf)
            if not k:
                break
            os.write(fd, view[:k])
            total += k
        os.fdatasync(fd)
    finally:
        os.close(fd)
        conn.close()
    return _spent(c0, t0, total)


def egress(port: int, path: str, mode: str) -> dict[str, float]:
    conn = _accept(port)
    c0, t0 = _cpu(), time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    total = 0
    try:
        if mode == "sendfile":
            while total < size:
                total += os.sendfile(conn.fileno(), fd, total, size - total)
        else:
            while total < size:
                data = os.pread(fd, CHUNK, total)
                conn.sendall(data)
                total += len(data)
    finally:
        os.close(fd)
        conn.close()
    return _spent(c0, t0, total)


def echo(port: int) -> dict[str, float]:
    conn = _accept(port)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    total = 0
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
            total += len(data)
    return {"bytes": total}


def quantiles(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / p99.9 / max of ``samples`` (seconds) in milliseconds, and their count."""
    ms = sorted(x * 1000 for x in samples)
    if not ms:
        nan = float("nan")
        return {"p50": nan, "p99": nan, "p999": nan, "max": nan, "n": 0}

    def q(f: float) -> float:
        return ms[min(len(ms) - 1, int(f * len(ms)))]

    return {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": ms[-1], "n": len(ms)}


def round_trips(port: int, rate: int, seconds: float, size: int = 100) -> dict[str, float]:
    """Paced request/response against ``echo`` on ``port``: one ``size``-byte message every
    1/``rate`` s (sleeping in between, so both ends go idle as the broker does at 10k msg/s),
    each timed from send to the whole echo back. Returns :func:`quantiles` plus the rate."""
    msg = b"r" * size
    lat: list[float] = []
    clock = time.perf_counter
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        gap = 1.0 / rate
        t0 = clock()
        end = t0 + seconds
        tick = t0
        while tick < end:
            a = clock()
            s.sendall(msg)
            got = 0
            while got < size:
                k = len(s.recv(65536))
                if not k:
                    raise RuntimeError("echo closed the connection")
                got += k
            lat.append(clock() - a)
            tick += gap
            delay = tick - clock()
            if delay > 0:
                time.sleep(delay)
        dt = clock() - t0
    return {**quantiles(lat), "rate": len(lat) / dt}


def fdatasync_latency(path: str, seconds: float, size: int = 1024) -> dict[str, float]:
    """Back-to-back ``os.write(size bytes)`` + ``os.fdatasync`` appends to a new file at
    ``path`` for ``seconds``; each pair timed. Returns :func:`quantiles` plus the rate."""
    data = b"f" * size
    lat: list[float] = []
    clock = time.perf_counter
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        t0 = clock()
        end = t0 + seconds
        while (a := clock()) < end:
            os.write(fd, data)
            os.fdatasync(fd)
            lat.append(clock() - a)
        dt = clock() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return {**quantiles(lat), "rate": len(lat) / dt}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("role", choices=["ingest", "egress", "echo"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out")
    ap.add_argument("--file")
    ap.add_argument("--mode", default="sendfile", choices=["sendfile", "read"])
    a = ap.parse_args(argv)
    if a.role == "ingest":
        res = ingest(a.port, a.out)
    elif a.role == "egress":
        res = egress(a.port, a.file, a.mode)
    else:
        res = echo(a.port)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
