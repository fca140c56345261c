"""The server over real sockets: framing, ordering, concurrency, limits, idle, graceful stop.

A small scripted handler stands in for the broker. Each request frame is ``>iB3xi``: a request
id, an op and an argument; the response (when there is one) starts with the request id.

  E echo    S sleep ``arg`` ms, then echo    N no response (like acks=0)
  B respond with ``arg`` bytes               P raise ProtocolError    X raise RuntimeError
  G wait until the test opens ``handler.gate``
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from seriatim.config import BrokerConfig
from seriatim.protocol.errors import MalformedRequestError
from seriatim.server.app import BrokerApp
from seriatim.server.connection import MAX_QUEUED_REQUESTS, ConnectionInfo
from seriatim.server.threaded import BackgroundServer

pytestmark = pytest.mark.timeout(30)

REQ = struct.Struct(">iB3xi")


class ScriptedHandler:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.handled = 0
        self.cancelled: list[int] = []
        self.conns: list[ConnectionInfo] = []
        self.gate = threading.Event()

    async def handle(
        self, frame: bytes, conn: ConnectionInfo
    ) -> Sequence[bytes | memoryview] | None:
        req_id, op, arg = REQ.unpack_from(frame)
        self.conns.append(conn)
        self.events.append(f"start {req_id}")
        try:
            if op == ord("S"):
                await asyncio.sleep(arg / 1000)
            elif op == ord("G"):
                while not self.gate.is_set():
                    await asyncio.sleep(0.005)
            elif op == ord("P"):
                raise MalformedRequestError("scripted protocol error")
            elif op == ord("X"):
                raise RuntimeError("scripted crash")
        except asyncio.CancelledError:
            self.cancelled.append(req_id)
            raise
        finally:
            self.events.append(f"end {req_id}")
            self.handled += 1
        if op == ord("N"):
            return None
        body = req_id.to_bytes(4, "big") + (b"x" * arg if op == ord("B") else b"")
        return [len(body).to_bytes(4, "big"), memoryview(body)]


class ScriptedApp:
    def __init__(self, fail_start: bool = False) -> None:
        self._handler = ScriptedHandler()
        self.fail_start = fail_start
        self.stopped = False

    @property
    def handler(self) -> ScriptedHandler:
        return self._handler

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("storage is on fire")

    async def stop(self) -> None:
        self._handler.events.append("app.stop")
        self.stopped = True


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "seriatim-server"]


@contextmanager
def serving(
    props: dict[str, Any] | None = None, *, app: ScriptedApp | None = None, use_uvloop: bool = False
) -> Iterator[tuple[BackgroundServer, ScriptedApp]]:
    app = app or ScriptedApp()
    config = BrokerConfig.from_props({"listeners": "PLAINTEXT://127.0.0.1:0", **(props or {})})
    bg = BackgroundServer(config, lambda _c: app, shutdown_timeout_s=5.0, use_uvloop=use_uvloop)
    bg.start()
    try:
        yield bg, app
    finally:
        bg.stop()
        assert _server_threads() == []


def connect(bg: BackgroundServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", bg.port), timeout=5)
    return sock


def send(sock: socket.socket, req_id: int, op: str, arg: int = 0) -> None:
    sock.sendall(REQ.size.to_bytes(4, "big") + REQ.pack(req_id, ord(op), arg))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def recv_response(sock: socket.socket) -> tuple[int, bytes]:
    size = int.from_bytes(recv_exact(sock, 4), "big")
    body = recv_exact(sock, size)
    return int.from_bytes(body[:4], "big"), body[4:]


def assert_closed(sock: socket.socket, timeout_s: float = 3.0) -> None:
    sock.settimeout(timeout_s)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return
    assert data == b"", "expected the server to close the connection"


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_responses_come_back_in_request_order_and_none_sends_nothing(use_uvloop: bool) -> None:
    with serving(use_uvloop=use_uvloop) as (bg, app), connect(bg) as sock:
        # One write carrying five pipelined requests with decreasing latency.
        script = [(1, "S", 80), (2, "E", 0), (3, "N", 0), (4, "S", 20), (5, "E", 0)]
        sock.sendall(
            b"".join(REQ.size.to_bytes(4, "big") + REQ.pack(i, ord(o), a) for i, o, a in script)
        )
        assert [recv_response(sock)[0] for _ in range(4)] == [1, 2, 4, 5]
        # One at a time per connection: each request ended before the next started.
        assert app.handler.events == [f"{e} {i}" for i in range(1, 6) for e in ("start", "end")]
        info = app.handler.conns[0]
        assert info.listener == "PLAINTEXT" and info.peer_host == "127.0.0.1"
        assert info.local_port == bg.port


def test_connections_are_served_concurrently() -> None:
    with serving() as (bg, _app), connect(bg) as slow, connect(bg) as fast:
        send(slow, 1, "S", 600)
        time.sleep(0.05)
        started = time.monotonic()
        send(fast, 2, "E")
        assert recv_response(fast)[0] == 2
        assert time.monotonic() - started < 0.5
        assert recv_response(slow)[0] == 1


def test_a_frame_split_into_single_bytes_is_reassembled() -> None:
    with serving() as (bg, _app), connect(bg) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = REQ.size.to_bytes(4, "big") + REQ.pack(9, ord("E"), 0)
        for i in range(len(wire)):
            sock.sendall(wire[i : i + 1])
            time.sleep(0.001)
        assert recv_response(sock)[0] == 9


def test_oversized_frame_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="seriatim.server"),
        serving({"socket.request.max.bytes": "1024"}) as (bg, app),
        connect(bg) as bystander,
        connect(bg) as offender,
    ):
        offender.sendall((5000).to_bytes(4, "big") + b"\0" * 100)
        assert_closed(offender)
        assert "exceeds the limit of 1024 bytes" in caplog.text
        send(bystander, 1, "E")
        assert recv_response(bystander)[0] == 1
        with connect(bg) as newcomer:
            send(newcomer, 2, "B", 1000)  # a 1 KiB *response* is fine
            assert recv_response(newcomer) == (2, b"x" * 1000)
        assert app.handler.handled == 2


def test_handler_errors_close_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="seriatim.server"),
        serving() as (bg, _app),
        connect(bg) as bystander,
    ):
        with connect(bg) as bad:
            send(bad, 1, "P")
            assert_closed(bad)
        assert "scripted protocol error" in caplog.text
        with connect(bg) as crashing:
            send(crashing, 2, "E")
            send(crashing, 3, "X")
            assert recv_response(crashing)[0] == 2  # earlier responses are still flushed
            assert_closed(crashing)
        assert "RuntimeError: scripted crash" in caplog.text  # with its traceback
        send(bystander, 4, "E")
        assert recv_response(bystander)[0] == 4


def test_idle_connections_are_closed_but_busy_ones_are_not() -> None:
    with (
        serving({"connections.max.idle.ms": "200"}) as (bg, _app),
        connect(bg) as idle,
        connect(bg) as chatty,
        connect(bg) as long_request,
    ):
        send(long_request, 1, "S", 600)  # in progress longer than the idle limit
        started = time.monotonic()
        for i in range(8):
            send(chatty, 10 + i, "E")
            assert recv_response(chatty)[0] == 10 + i
            time.sleep(0.08)
        assert_closed(idle)
        assert time.monotonic() - started < 2.0
        assert recv_response(long_request)[0] == 1
        send(chatty, 99, "E")
        assert recv_response(chatty)[0] == 99


def test_a_client_that_does_not_read_cannot_make_the_server_buffer_without_bound() -> None:
    n, size = 100, 1 << 20
    with serving() as (bg, app), connect(bg) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        for i in range(n):
            send(sock, i, "B", size)
        time.sleep(0.5)
        # Without back-pressure all 100 MiB of responses would be produced and buffered.
        stalled_at = app.handler.handled
        print("handled while the client did not read:", stalled_at)
        assert stalled_at < 40, stalled_at
        for i in range(n):
            req_id, body = recv_response(sock)
            assert req_id == i and len(body) == size
        assert app.handler.handled == n


def test_a_client_that_sends_faster_than_the_server_handles_is_paused() -> None:
    padding = b"p" * (64 * 1024)
    n = 400  # 25 MiB of requests: far more than the queue bound and the socket buffers
    frames = [
        (REQ.size + len(padding)).to_bytes(4, "big") + REQ.pack(i, ord("E"), 0) + padding
        for i in range(1, n + 1)
    ]
    with serving() as (bg, app), connect(bg) as sock:
        send(sock, 0, "G")  # holds the connection's requests behind it
        writer = threading.Thread(target=lambda: sock.sendall(b"".join(frames)))
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive()  # TCP pushes back on the client: the server stopped reading

        async def queued() -> int:
            return sum(conn.queued_requests for conn in bg.server.connections)

        # One read may complete a few frames more than the bound (a chunk is <= 256 KiB).
        assert MAX_QUEUED_REQUESTS < bg.call(queued()) <= MAX_QUEUED_REQUESTS + 5
        app.handler.gate.set()
        assert [recv_response(sock)[0] for _ in range(n + 1)] == list(range(n + 1))
        writer.join(5)
        assert not writer.is_alive()


def test_the_handler_sees_the_peer_go_away() -> None:
    with serving() as (bg, app):
        with connect(bg) as sock:
            send(sock, 1, "G")
            time.sleep(0.1)
            assert not app.handler.conns[0].closed
        deadline = time.monotonic() + 2
        while not app.handler.conns[0].closed and time.monotonic() < deadline:
            time.sleep(0.01)
        app.handler.gate.set()
        assert app.handler.conns[0].closed  # a long-poll can stop waiting for a dead client


def test_graceful_stop_finishes_the_request_in_flight() -> None:
    app = ScriptedApp()
    config = BrokerConfig.from_props(listeners="PLAINTEXT://127.0.0.1:0")
    bg = BackgroundServer(config, lambda _c: app, shutdown_timeout_s=5.0)
    bg.start()
    try:
        with connect(bg) as sock:
            send(sock, 1, "S", 300)
            send(sock, 2, "E")  # queued behind 1: dropped by the stop, never started
            time.sleep(0.1)
            stopper = threading.Thread(target=bg.stop)
            stopper.start()
            assert recv_response(sock)[0] == 1
            assert_closed(sock)
            stopper.join(5)
            assert not stopper.is_alive()
        assert app.handler.events == ["start 1", "end 1", "app.stop"]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", bg.port), timeout=1).close()
    finally:
        bg.stop()
    assert _server_threads() == []


def test_stop_cancels_requests_that_outlive_the_shutdown_timeout() -> None:
    app = ScriptedApp()
    config = BrokerConfig.from_props(listeners="PLAINTEXT://127.0.0.1:0")
    bg = BackgroundServer(config, lambda _c: app, shutdown_timeout_s=0.2)
    bg.start()
    with connect(bg) as sock:
        send(sock, 1, "S", 60_000)
        time.sleep(0.05)
        started = time.monotonic()
        bg.stop()
        assert time.monotonic() - started < 3
        assert_closed(sock)
    assert app.handler.cancelled == [1]
    assert app.handler.events[-1] == "app.stop"
    assert _server_threads() == []


def test_port_zero_is_resolved_and_a_new_server_can_take_the_same_port() -> None:
    with serving() as (bg, _app):
        port = bg.port
        assert port != 0
        assert bg.bootstrap == f"127.0.0.1:{port}"
        assert bg.config.get("listeners") == f"PLAINTEXT://127.0.0.1:{port}"
        with connect(bg) as sock:
            send(sock, 1, "E")
            assert recv_response(sock)[0] == 1
            resolved = bg.config
    again = BackgroundServer(resolved, lambda _c: ScriptedApp())
    again.start()
    try:
        assert again.port == port
        with connect(again) as sock:
            send(sock, 2, "E")
            assert recv_response(sock)[0] == 2
    finally:
        again.stop()


def test_a_failed_app_start_releases_the_port_and_the_thread() -> None:
    config = BrokerConfig.from_props(listeners="PLAINTEXT://127.0.0.1:0")
    bg = BackgroundServer(config, lambda _c: ScriptedApp(fail_start=True))
    with pytest.raises(RuntimeError, match="storage is on fire"):
        bg.start()
    assert _server_threads() == []
    assert not bg.running


def test_the_app_is_created_with_the_bound_port() -> None:
    seen: list[BrokerConfig] = []

    def factory(config: BrokerConfig) -> BrokerApp:
        seen.append(config)
        return ScriptedApp()

    config = BrokerConfig.from_props(listeners="PLAINTEXT://127.0.0.1:0")
    with BackgroundServer(config, factory) as bg:
        assert seen[0].listeners[0].port == bg.port != 0
        assert seen[0].advertised_listeners[0].port == bg.port
