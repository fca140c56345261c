"""docs/protocol.md is generated from the handler registry and must be current.

If this fails after adding or changing a handler, regenerate the file from the repository
root with ``python -m seriatim.broker.docs`` and commit it.
"""

from __future__ import annotations

import re
import socket
import struct
from pathlib import Path

from kio.serial import entity_reader

import seriatim.testing
from seriatim.broker.docs import render
from seriatim.broker.handlers import load_all
from seriatim.protocol import response_class

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ROW = re.compile(r"^\| (\d+) \| (\w+) \| (\d+)\.\.(\d+) \| (\d+)\.\.(\d+)")


def test_committed_protocol_doc_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/protocol.md is stale: run `python -m seriatim.broker.docs` from the repository root"
    )


def _doc_table() -> list[tuple[int, int, int]]:
    rows = []
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows.append((int(m.group(1)), int(m.group(3)), int(m.group(4))))
    return rows


def test_doc_lists_every_registered_api() -> None:
    assert _doc_table() == load_all().table()


def test_doc_matches_what_a_running_broker_advertises() -> None:
    with seriatim.testing.broker() as b:
        host, port = b.bootstrap.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            payload = struct.pack(">hhih", 18, 0, 5, -1)
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
                chunk = sock.recv(65536)
                assert chunk, "the broker closed the connection"
                data += chunk
    resp, _ = entity_reader(response_class(18, 0))(data[4:], 4)
    advertised = [(int(k.api_key), int(k.min_version), int(k.max_version)) for k in resp.api_keys]
    assert advertised == _doc_table()
