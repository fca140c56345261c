"""Requests captured from real clients decode with decode_request; our replies satisfy them.

A throwaway asyncio server (127.0.0.1:0) answers ApiVersions (our encoder, the recommended
table of notes §3) and Metadata (make() + encode_response) and records every decoded request.
kafka-python and aiokafka bootstrap against it and list topics. Everything is torn down in
``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from kafka import KafkaConsumer  # type: ignore[import-untyped]

from seriatim.protocol import (
    FrameDecoder,
    RequestHeader,
    api_versions_response,
    api_versions_unsupported_response,
    decode_request,
    encode_response,
    make,
    response_class,
)

# kafka-python loads its JSON schemas with deprecated importlib.resources calls.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RECOMMENDED = [
    (0, 0, 11),
    (1, 4, 12),
    (2, 1, 7),
    (3, 0, 12),
    (8, 2, 9),
    (9, 1, 9),
    (10, 0, 6),
    (11, 0, 9),
    (12, 0, 4),
    (13, 0, 5),
    (14, 0, 5),
    (15, 0, 5),
    (16, 0, 5),
    (18, 0, 4),
    (19, 2, 7),
    (20, 1, 6),
    (22, 0, 5),
    (23, 2, 4),
    (32, 1, 4),
    (60, 0, 1),
]


class CaptureServer:
    def __init__(self, table: list[tuple[int, int, int]] = RECOMMENDED) -> None:
        self.table = table
        self.requests: list[tuple[RequestHeader, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        decoder = FrameDecoder(1024 * 1024)
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    header, request = decode_request(frame)
                    self.requests.append((header, request))
                    reply = self._reply(header, request)
                    if reply is not None:
                        writer.write(reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _reply(self, header: RequestHeader, request: Any) -> bytes | None:
        if header.api_key == 18:
            max_version = next(hi for key, _, hi in self.table if key == 18)
            if header.api_version > max_version:
                return api_versions_unsupported_response(header.correlation_id, self.table)
            return api_versions_response(header.correlation_id, header.api_version, self.table)
        if header.api_key == 3:
            cls = response_class(3, header.api_version)
            fields: dict[str, Any] = {
                "brokers": [{"node_id": 0, "host": "127.0.0.1", "port": self.port}],
                "topics": [],
            }
            if header.api_version >= 1:
                fields["controller_id"] = 0
            if header.api_version >= 2:
                fields["cluster_id"] = "seriatim-test"
            return encode_response(header.correlation_id, make(cls, **fields))
        return None  # anything else: recorded, never answered


def _kafka_python_list_topics(port: int) -> set[str]:
    consumer = KafkaConsumer(
        bootstrap_servers=f"127.0.0.1:{port}",
        request_timeout_ms=5000,
    )
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


@pytest.mark.timeout(60)
def test_kafka_python_bootstrap_decodes() -> None:
    requests = _run_kafka_python(RECOMMENDED)
    seen = {(h.api_key, h.api_version) for h, _ in requests}
    assert (18, 4) in seen  # ApiVersions v4: flexible body, header v2
    assert (3, 12) in seen  # Metadata capped by our table
    api_versions = next(r for h, r in requests if h.api_key == 18)
    assert api_versions.client_software_name == "kafka-python"
    assert all(h.client_id for h, _ in requests)


@pytest.mark.timeout(60)
def test_kafka_python_retries_after_the_v0_form_unsupported_reply() -> None:
    # Advertise ApiVersions only up to v2: kafka-python's v4 gets the v0-form error reply,
    # reads our table from it and retries with v2 (notes §2, pitfall 2).
    table = [(k, lo, 2 if k == 18 else hi) for k, lo, hi in RECOMMENDED]
    requests = _run_kafka_python(table)
    versions = [h.api_version for h, _ in requests if h.api_key == 18]
    assert versions[:2] == [4, 2]
    assert any(h.api_key == 3 for h, _ in requests)


def _run_kafka_python(table: list[tuple[int, int, int]]) -> list[tuple[RequestHeader, Any]]:
    async def run() -> list[tuple[RequestHeader, Any]]:
        server = CaptureServer(table)
        await server.start()
        try:
            topics = await asyncio.wait_for(
                asyncio.to_thread(_kafka_python_list_topics, server.port), 20
            )
            assert topics == set()
        finally:
            await server.stop()
        return server.requests

    return asyncio.run(run())


@pytest.mark.timeout(60)
def test_aiokafka_bootstrap_decodes() -> None:
    async def run() -> list[tuple[RequestHeader, Any]]:
        server = CaptureServer()
        await server.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{server.port}", request_timeout_ms=5000
        )
        try:
            await asyncio.wait_for(consumer.start(), 20)
            assert await asyncio.wait_for(consumer.topics(), 20) == set()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)
            await server.stop()
        return server.requests

    requests = asyncio.run(run())
    seen = {(h.api_key, h.api_version) for h, _ in requests}
    assert (18, 0) in seen  # aiokafka always asks v0
    assert any(k == 3 and v <= 5 for k, v in seen)
