"""Raw byte movers, the floor for the broker's CPU cost and the machine's own ceilings.

    python -m bench.rawcopy ingest --port P --out FILE      # socket -> file (recv_into + write)
    python -m bench.rawcopy egress --port P --file FILE [--mode sendfile|read]  # file -> socket

Each accepts one loopback connection, moves the bytes, fdatasyncs (ingest), and prints one
JSON line with the bytes moved and its own CPU seconds (utime + stime from getrusage) spent
between accept and the end, i.e. what moving those bytes cost this process.
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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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
    return {"bytes": total, "cpu": _cpu() - c0, "seconds": time.perf_counter() - t0}


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
    return {"bytes": total, "cpu": _cpu() - c0, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("role", choices=["ingest", "egress"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out")
    ap.add_argument("--file")
    ap.add_argument("--mode", default="sendfile", choices=["sendfile", "read"])
    a = ap.parse_args(argv)
    res = ingest(a.port, a.out) if a.role == "ingest" else egress(a.port, a.file, a.mode)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
