"""A raw Kafka connection for tests: send any request entity, read the response entity.

For the cases no client library exposes (malformed or unusual requests, exact versions, error
paths), build the body with kio's request classes (or a dict of fields) and talk to a broker
over one blocking socket::

    from seriatim.testing.wire import RawConnection

    with RawConnection(broker.bootstrap) as conn:
        resp = conn.request(18, 3, {"client_software_name": "t", "client_software_version": "1"})
        conn.send_frame(b"garbage")          # raw bytes: the size prefix is added
        conn.expect_closed()

Works against any Kafka-compatible broker; the kio glue is seriatim's (``make`` fills unset
fields with protocol defaults).
"""

from __future__ import annotations

import dataclasses
import io
import socket
import struct
from types import TracebackType
from typing import Any

from kio.serial import entity_reader, entity_writer

from seriatim.protocol import make, request_class, response_class

__all__ = ["RawConnection", "decode_response", "encode_request"]


def encode_request(
    api_key: int, version: int, correlation_id: int, body: Any, client_id: str = "test"
) -> bytes:
    """A complete request frame (size prefix included); ``body`` is an entity or a dict."""
    cls = request_class(api_key, version)
    if not dataclasses.is_dataclass(body):
        body = make(cls, **body)
    buf = io.BytesIO()
    cid = client_id.encode()
    buf.write(struct.pack(">hhih", api_key, version, correlation_id, len(cid)) + cid)
    if cls.__header_schema__.__version__ >= 2:
        buf.write(b"\x00")  # request header v2: empty tagged fields
    entity_writer(cls)(buf, body)
    payload = buf.getvalue()
    return struct.pack(">i", len(payload)) + payload


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[int, Any]:
    """(correlation id, response entity) of a response frame without its size prefix."""
    (correlation_id,) = struct.unpack_from(">i", frame, 0)
    cls = response_class(api_key, version)
    offset = 4 + (1 if cls.__header_schema__.__version__ >= 1 else 0)
    entity, _ = entity_reader(cls)(frame, offset)
    return correlation_id, entity


class RawConnection:
    """One blocking connection speaking raw Kafka frames."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0, client_id: str = "test") -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, api_key: int, version: int, body: Any) -> int:
        """Send a request without waiting; returns its correlation id (for pipelining)."""
        self.corr += 1
        self.sock.sendall(encode_request(api_key, version, self.corr, body, self.client_id))
        return self.corr

    def receive(self, api_key: int, version: int, correlation_id: int) -> Any:
        """Read the next response, which must answer ``correlation_id``."""
        got, entity = decode_response(api_key, version, self.recv_frame())
        if got != correlation_id:
            raise AssertionError(f"response for correlation id {got}, expected {correlation_id}")
        return entity

    def request(self, api_key: int, version: int, body: Any) -> Any:
        """Send a request and return its response entity."""
        return self.receive(api_key, version, self.send(api_key, version, body))

    def send_frame(self, payload: bytes) -> None:
        """Send raw bytes as one frame (the 4-byte size prefix is added)."""
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("the broker closed the connection")
            out += chunk
        return bytes(out)

    def recv_frame(self) -> bytes:
        """One response frame, without its size prefix."""
        (size,) = struct.unpack(">i", self.recv_exact(4))
        return self.recv_exact(size)

    def expect_closed(self) -> bool:
        """True if the broker closes the connection (EOF or reset) before sending anything."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
