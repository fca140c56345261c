"""``seriatim serve`` as a real process: banner, SIGTERM, config errors."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

HAVE_BROKER = importlib.util.find_spec("seriatim.broker.app") is not None
ECHO_APP = "seriatim.testing.echo:create_app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "seriatim.cli.main", "serve",
        "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}",
        "-c", f"log.dirs={tmp_path / 'data'}",
        *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    return proc, port


def wait_accepting(proc: subprocess.Popen[str], port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError("the broker never accepted a connection")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


@pytest.mark.parametrize("uvloop", ["1", "0"])
def test_serve_prints_how_to_connect_and_stops_cleanly_on_sigterm(
    tmp_path: Path, uvloop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERIATIM_UVLOOP", uvloop)
    proc, port = spawn(tmp_path, "--app", ECHO_APP)
    try:
        wait_accepting(proc, port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall((8).to_bytes(4, "big") + b"abcdefgh")
            assert sock.recv(100) == (8).to_bytes(4, "big") + b"abcdefgh"
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert f"bootstrap servers: 127.0.0.1:{port}" in out
    assert f"kcat -b 127.0.0.1:{port} -L" in out
    assert "SIGTERM received: stopping" in err and "stopped" in err


def test_serve_reports_a_bad_config_value_and_exits_nonzero(tmp_path: Path) -> None:
    proc, _port = spawn(tmp_path, "--app", ECHO_APP, "-c", "num.partitions=zero")
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "num.partitions" in err and "'zero'" in err and "expected an integer" in err


def test_serve_reads_a_properties_file_and_env(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text("node.id=42\n")
    env = dict(os.environ, SERIATIM_NUM_PARTITIONS="not-a-number")
    proc = subprocess.run(
        [sys.executable, "-m", "seriatim.cli.main", "serve", "--app", ECHO_APP,
         "-f", str(props), "-c", "listeners=PLAINTEXT://127.0.0.1:0"],
        check=False, capture_output=True, text=True, env=env, timeout=20, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "env SERIATIM_NUM_PARTITIONS" in proc.stderr


def test_serve_reports_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "seriatim.cli.main", "serve", "--app", ECHO_APP,
             "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}", "-c", f"log.dirs={tmp_path}"],
            check=False, capture_output=True, text=True, timeout=20, cwd=tmp_path,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"cannot serve PLAINTEXT://127.0.0.1:{port}" in proc.stderr


@pytest.mark.skipif(not HAVE_BROKER, reason="seriatim.broker.app not written yet")
def test_serve_with_the_real_broker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, port = spawn(tmp_path)
    try:
        wait_accepting(proc, port)
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert f"bootstrap servers: 127.0.0.1:{port}" in out
    assert (tmp_path / "data").is_dir()
