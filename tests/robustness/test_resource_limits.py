"""Resource limits (notes/reliability.md section 9, item 12), on a real broker.

``max.connections`` and ``max.connections.per.ip`` (+ ``.overrides``) close the excess at
accept while an existing connection keeps getting ApiVersions answers fast (p99 < 100 ms,
broker in a subprocess, 1000 connects against a limit of 500); a slowloris that trickles a
frame is closed by ``connections.request.read.timeout.ms`` (seriatim's own key) although it
is never idle; an idle connection is closed at ``connections.max.idle.ms``; a client that
pipelines fetches and never reads cannot make the broker buffer more than about one
response plus its request queue.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from robust_support import BrokerProcess, RawConn, create_topic

import seriatim.testing
from seriatim.records import build_batch
from seriatim.server.connection import MAX_QUEUED_BYTES
from seriatim.testing.wire import encode_request

API_VERSIONS_FRAME = encode_request(
    18, 3, 1, {"client_software_name": "x", "client_software_version": "1"}
)


def count_closed(socks: list[socket.socket], wait_s: float = 1.5) -> int:
    """How many of ``socks`` the broker closed (EOF or reset) within ``wait_s``."""
    closed: set[int] = set()
    deadline = time.monotonic() + wait_s
    pending = {s.fileno(): s for s in socks}
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending.values()), [], [], 0.1)
        for s in ready:
            try:
                data = s.recv(1)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data == b"":
                closed.add(s.fileno())
            pending.pop(s.fileno(), None)
    return len(closed)


def connect_many(port: int, n: int, source: str = "127.0.0.1") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_connection_flood_is_capped_and_the_broker_stays_responsive(tmp_path: Path) -> None:
    config = {"max.connections": 500}
    with BrokerProcess(tmp_path / "data", config, log_path=tmp_path / "broker.log") as b:
        flood: list[socket.socket] = []
        done = threading.Event()

        def run_flood() -> None:
            try:
                flood.extend(connect_many(b.port, 1000))
            finally:
                done.set()

        latencies: list[float] = []
        with RawConn(b.bootstrap) as health:
            assert health.api_versions_ok()
            t = threading.Thread(target=run_flood)
            try:
                t.start()
                while not done.is_set() or len(latencies) < 200:
                    t0 = time.perf_counter()
                    assert health.api_versions_ok()
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.002)
                t.join()
                closed = count_closed(flood)
                assert b.alive()
                # The limit counts the health connection: 499 of the flood fit.
                assert closed == 1000 - 499, f"{closed} of 1000 closed"
                assert health.api_versions_ok()
            finally:
                t.join()
                close_all(flood)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"ApiVersions during the flood: n={len(latencies)} p50="
              f"{latencies[len(latencies) // 2] * 1000:.1f} ms p99={p99 * 1000:.1f} ms")
        assert p99 < 0.100
        # Slots are given back when connections close.
        deadline = time.monotonic() + 5
        while True:
            socks = connect_many(b.port, 10)
            n = count_closed(socks, 0.3)
            close_all(socks)
            if n == 0:
                break
            assert time.monotonic() < deadline, "closed connections still count"
            time.sleep(0.1)


@pytest.fixture
def broker_factory() -> Iterator[Any]:
    brokers: list[Any] = []

    def make(**config: Any) -> Any:
        b = seriatim.testing.broker(config=config)
        brokers.append(b)
        return b.__enter__()

    try:
        yield make
    finally:
        for b in brokers:
            b.__exit__(None, None, None)


def test_max_connections_per_ip_and_overrides(broker_factory: Any) -> None:
    b = broker_factory(**{
        "max.connections.per.ip": 100,
        "max.connections.per.ip.overrides": "127.0.0.2:5,[::2]:1",
    })
    socks = connect_many(b.port, 200)
    other = connect_many(b.port, 20, source="127.0.0.2")
    try:
        assert count_closed(socks) == 100
        assert count_closed(other) == 15
        assert b._running().server.rejected_connections == 115
    finally:
        close_all(socks + other)
    with RawConn(b.bootstrap) as c:
        assert c.api_versions_ok()


def test_slowloris_is_closed_by_the_request_read_timeout(broker_factory: Any) -> None:
    b = broker_factory(**{"connections.request.read.timeout.ms": 800})
    frame = API_VERSIONS_FRAME
    # A frame trickled over ~0.5 s completes in time and is answered.
    with RawConn(b.bootstrap) as ok:
        for i in range(0, len(frame), 8):
            ok.sock.sendall(frame[i : i + 8])
            time.sleep(0.5 / (len(frame) / 8))
        assert struct.unpack(">i", ok.recv_exact(4))[0] > 0
    # One byte every 200 ms: never idle, never complete -> closed after ~0.8 s.
    with RawConn(b.bootstrap, timeout_s=0.2) as slow:
        t0 = time.monotonic()
        closed_after = None
        for byte in frame:
            try:
                slow.sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
            try:
                if slow.sock.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed_after = time.monotonic() - t0
                break
        assert closed_after is not None, "the slowloris connection was never closed"
        assert 0.7 <= closed_after <= 2.0, closed_after
    # A size prefix cut in half counts as a started frame too.
    with RawConn(b.bootstrap, timeout_s=3) as half:
        t0 = time.monotonic()
        half.sock.sendall(b"\x00\x00")
        assert half.closed_by_peer()
        assert time.monotonic() - t0 < 2.0


def test_idle_connections_are_closed(broker_factory: Any) -> None:
    b = broker_factory(**{"connections.max.idle.ms": 500})
    with RawConn(b.bootstrap, timeout_s=5) as c:
        assert c.api_versions_ok()
        t0 = time.monotonic()
        assert c.closed_by_peer()
        assert 0.3 <= time.monotonic() - t0 <= 2.5


def test_a_slow_reader_of_fetches_cannot_make_the_broker_buffer_without_bound(
    broker_factory: Any,
) -> None:
    b = broker_factory(**{"log.flush.policy": "never"})
    create_topic(b.bootstrap, "big")
    value = b"x" * 100_000
    with RawConn(b.bootstrap) as c:
        for _ in range(40):  # ~4 MB in the partition
            body = {"acks": 1, "timeout_ms": 5000, "topic_data": [{"name": "big",
                    "partition_data": [{"index": 0, "records": build_batch([(None, value)])}]}]}
            resp = c.request(0, 9, body)
            assert int(resp.responses[0].partition_responses[0].error_code) == 0
    fetch = {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 4 << 20,
        "topics": [{"topic": "big", "partitions": [
            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 4 << 20}]}],
    }
    reader = socket.create_connection(("127.0.0.1", b.port))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        frames = b"".join(encode_request(1, 12, i, fetch) for i in range(300))
        reader.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 3
        while sent < len(frames) and time.monotonic() < deadline:  # until TCP pushes back
            try:
                sent += reader.send(frames[sent:])
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(1.0)

        async def inspect() -> list[tuple[int, int]]:
            server = b._running().server
            return [(c._transport.get_write_buffer_size(), c._queued_bytes)
                    for c in server.connections]

        state = b.call(inspect())
        assert state, "the connection is gone"
        buffered = max(s[0] for s in state)
        queued = max(s[1] for s in state)
        print(f"slow reader: {buffered} bytes in the transport buffer, {queued} bytes of "
              "queued requests")
        # One ~4 MB fetch response at most (written whole once the buffer drained below the
        # high-water mark), not 300 responses (~1.2 GB); the request queue is bounded by
        # MAX_QUEUED_BYTES plus what one read delivers (reading pauses after that read).
        assert buffered <= 5 << 20
        assert queued <= MAX_QUEUED_BYTES + (1 << 20)
        with RawConn(b.bootstrap) as other:
            assert other.api_versions_ok()
    finally:
        reader.close()
