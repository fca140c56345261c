"""The connection as a BufferedProtocol, over real sockets, on asyncio and on uvloop.

Frames of every size (tiny, around the 64 KiB scratch, several MiB) arrive intact and in order;
a large frame reaches the handler as a read-only view of a buffer that is never reused, so a
handler may keep it while the connection reads on; the echo app works.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from seriatim.config import BrokerConfig
from seriatim.protocol.framing import Frame
from seriatim.server.connection import ConnectionInfo
from seriatim.server.threaded import BackgroundServer
from seriatim.testing.echo import EchoApp

pytestmark = pytest.mark.timeout(60)

LOOPS = pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
SIZES = [8, 100, 65_000, 65_532, 65_536, 70_000, 3 * 1024 * 1024 + 7, 12, 1024 * 1024]


class KeepingHandler:
    """Keeps every frame it is given (as a copy-free decoder would keep slices); answers its
    index and length."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def handle(self, frame: Frame, conn: ConnectionInfo) -> Sequence[bytes] | None:
        self.frames.append(frame)
        body = struct.pack(">ii", len(self.frames) - 1, len(frame))
        return [struct.pack(">i", len(body)), body]


class KeepingApp:
    def __init__(self) -> None:
        self.handler = KeepingHandler()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


@contextmanager
def serving(app: Any, use_uvloop: bool, **props: str) -> Iterator[BackgroundServer]:
    config = BrokerConfig.from_props(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "socket.request.max.bytes": str(8 << 20),
            **props,
        }
    )
    bg = BackgroundServer(config, lambda _c: app, shutdown_timeout_s=5.0, use_uvloop=use_uvloop)
    bg.start()
    try:
        yield bg
    finally:
        bg.stop()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def payloads(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randbytes(n) for n in SIZES]


@LOOPS
def test_frames_of_every_size_arrive_intact_and_kept_frames_never_change(
    use_uvloop: bool,
) -> None:
    app = KeepingApp()
    sent = payloads(1) + payloads(2)
    with serving(app, use_uvloop) as bg, socket.create_connection(("127.0.0.1", bg.port)) as s:
        wire = b"".join(struct.pack(">i", len(p)) + p for p in sent)
        writer = threading.Thread(target=s.sendall, args=(wire,))
        writer.start()
        for i, p in enumerate(sent):
            assert recv_exact(s, 12) == struct.pack(">iii", 8, i, len(p))
        writer.join(10)
        got = app.handler.frames
        assert [bytes(f) for f in got] == sent  # read on after each: nothing was overwritten
        for f in got:
            assert isinstance(f, bytes) or (isinstance(f, memoryview) and f.readonly)
        assert any(isinstance(f, memoryview) for f in got)  # large frames were received in place


@LOOPS
def test_the_echo_app_returns_large_and_small_frames(use_uvloop: bool) -> None:
    sent = payloads(3)
    with (
        serving(EchoApp(), use_uvloop) as bg,
        socket.create_connection(("127.0.0.1", bg.port)) as s,
    ):
        for p in sent:
            s.sendall(struct.pack(">i", len(p)) + p)
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            assert size == len(p) and recv_exact(s, size) == p


@LOOPS
def test_a_bad_size_after_a_large_frame_closes_the_connection(use_uvloop: bool) -> None:
    app = KeepingApp()
    big = b"b" * (2 << 20)
    with serving(app, use_uvloop) as bg, socket.create_connection(("127.0.0.1", bg.port)) as s:
        s.sendall(struct.pack(">i", len(big)) + big)
        assert recv_exact(s, 12) == struct.pack(">iii", 8, 0, len(big))
        s.sendall(struct.pack(">i", 3) + b"x" * 100)
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        assert [bytes(f) for f in app.handler.frames] == [big]


@LOOPS
def test_a_peer_that_sends_only_a_size_prefix_meets_the_read_timeout(use_uvloop: bool) -> None:
    props = {"connections.request.read.timeout.ms": "300", "connections.max.idle.ms": "600000"}
    with (
        serving(KeepingApp(), use_uvloop, **props) as bg,
        socket.create_connection(("127.0.0.1", bg.port)) as s,
    ):
        s.sendall(struct.pack(">i", 5 << 20))  # a large frame announced, no byte of it sent
        s.settimeout(5)
        started = time.monotonic()
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        assert 0.2 < time.monotonic() - started < 3
