"""How long ``seriatim serve`` takes from process start to its first accepted connection.

Run: ``python -m seriatim.testing.startup_bench [--runs 15] [--app module:create_app]``.

Each run spawns the ``seriatim`` console script (as a user would) with a fresh temporary
``log.dirs`` and a free port, then connects in a tight loop (1 ms apart) until the connect
succeeds: that instant is "first accepted connection". Because the server listens only after
the app has started (storage opened), this includes imports, config, the event loop, the app's
start and the bind. With ``--app seriatim.testing.echo:create_app`` (no broker) it measures the
server layer's floor. It then sends one frame and times the first response too (only meaningful
for the echo app, whose response is the frame itself; with the real broker it sends an
ApiVersions v0 request). Prints every run and the median; each process is stopped by its own
PID with SIGTERM and reaped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ECHO_APP = "seriatim.testing.echo:create_app"
# ApiVersions v0 request: api_key 18, version 0, correlation id 1, client id "bench".
API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    exe = shutil.which("seriatim", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "seriatim.cli.main"]


def one_run(app: str | None) -> tuple[float, float]:
    """(ms to first accepted connection, ms to first response) for one process."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="seriatim-startup-") as tmp:
        cmd = [
            *_command(), "serve",
            "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "-c", f"log.dirs={tmp}/data",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if app:
            cmd += ["--app", app]
        # An installed package has .pyc files; PYTHONDONTWRITEBYTECODE (set in some dev and CI
        # shells) would make every run compile seriatim from source. The warm-up run writes
        # them (into __pycache__/, which git ignores).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"serve exited early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    time.sleep(0.001)
            accepted_ms = (time.perf_counter() - started) * 1000
            with sock:
                payload = b"12345678" if app == ECHO_APP else API_VERSIONS_V0
                sock.sendall(len(payload).to_bytes(4, "big") + payload)
                sock.recv(65536)
            responded_ms = (time.perf_counter() - started) * 1000
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    return accepted_ms, responded_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--app",
        default=None,
        help=f"module:create_app; default: the real broker ({ECHO_APP} for the server layer alone)",
    )
    args = parser.parse_args(argv)
    one_run(args.app)  # warm-up: page cache, .pyc files
    accepted, responded = [], []
    for i in range(args.runs):
        a, r = one_run(args.app)
        accepted.append(a)
        responded.append(r)
        print(f"run {i + 1:2d}: accepted {a:6.1f} ms, first response {r:6.1f} ms")
    print(
        f"median: accepted {statistics.median(accepted):.1f} ms "
        f"(min {min(accepted):.1f}, max {max(accepted):.1f}); "
        f"first response {statistics.median(responded):.1f} ms"
    )


if __name__ == "__main__":
    main()
