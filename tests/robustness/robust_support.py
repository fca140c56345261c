"""Shared helpers of the robustness tests (and of tools/soak.py): a broker subprocess, raw wire.

:class:`BrokerProcess` runs ``seriatim serve`` as a child process on a fixed port (so a restart
after ``kill -9`` binds the same address and clients reconnect), waits until it answers
ApiVersions, reads its RSS from ``/proc/PID/status`` and can SIGKILL it. Every process it starts
it also ends (``close``; also a context manager). :class:`RawConn` is one blocking socket that
sends prepared frames and reads size-prefixed responses.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seriatim.testing.wire import RawConnection

READY_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


API_VERSIONS_V3 = {"client_software_name": "robust", "client_software_version": "1"}


class RawConn(RawConnection):
    """A raw connection with the robustness tests' health checks."""

    def api_versions_ok(self) -> bool:
        resp = self.request(18, 3, API_VERSIONS_V3)
        return int(resp.error_code.value) == 0 and len(resp.api_keys) > 0

    def closed_by_peer(self) -> bool:
        """Blocks (up to the socket timeout) until the broker sends something or closes."""
        return self.expect_closed()


def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    with RawConn(bootstrap) as c:
        topic = {
            "name": name,
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": [{"name": k.replace("_", "."), "value": v} for k, v in configs.items()],
        }
        resp = c.request(19, 7, {"topics": [topic], "timeout_ms": 5000})
        code = int(resp.topics[0].error_code)
        assert code in (0, 36), resp  # 36: TOPIC_ALREADY_EXISTS


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class BrokerProcess:
    """``seriatim serve`` in a child process, on a fixed port, with a given data dir."""

    def __init__(
        self,
        data_dir: str | Path,
        config: Mapping[str, Any] | None = None,
        *,
        port: int | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.data_dir = str(data_dir)
        self.port = port or free_port()
        self.config = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": self.data_dir,
            "group.initial.rebalance.delay.ms": "0",
            **{
                k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in (config or {}).items()
            },
        }
        self.log_path = (
            str(log_path)
            if log_path
            else os.path.join(
                os.path.dirname(self.data_dir.rstrip("/")) or ".", f"broker-{self.port}.log"
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not running"
        return self.proc.pid

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Start and wait until ApiVersions is answered; returns the seconds that took."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [sys.executable, "-c", "from seriatim.cli.main import main; main()", "serve"]
        for key, value in self.config.items():
            args += ["-c", f"{key}={value}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERIATIM_")}
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            args, stdout=self._log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.wait_ready(timeout_s, t0)
        return time.monotonic() - t0

    def wait_ready(self, timeout_s: float, t0: float | None = None) -> None:
        deadline = (t0 or time.monotonic()) + timeout_s
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"broker exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with RawConn(self.bootstrap, timeout_s=1.0) as c:
                    if c.api_versions_ok():
                        return
            except (OSError, EOFError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker not ready after {timeout_s} s; see {self.log_path}")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (graceful), SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()
        return None if self.proc is None else self.proc.returncode

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> BrokerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
