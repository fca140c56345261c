"""Request headers and bodies (kio glue), ApiVersions replies, hostile and random input."""

from __future__ import annotations

import io
import resource
import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer

from seriatim.errors import ErrorCode
from seriatim.protocol import (
    MalformedRequestError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
    api_versions_response,
    api_versions_unsupported_response,
    decode_request,
    encode_response,
    make,
    parse_request_header,
    response_class,
)
from seriatim.protocol._wire import uvarint_bytes as uvarint

TABLE = [(0, 0, 11), (1, 4, 12), (3, 0, 12), (18, 0, 4)]



def request_frame(
    api_key: int,
    version: int,
    body: bytes,
    *,
    correlation_id: int = 42,
    client_id: str | None = "cli",
    header_tags: bytes = b"\x00",
) -> bytes:
    """A frame (no size prefix) with a hand-built header v1/v2 and ``body``."""
    head = struct.pack(">hhi", api_key, version, correlation_id)
    if client_id is None:
        head += struct.pack(">h", -1)
    else:
        raw = client_id.encode()
        head += struct.pack(">h", len(raw)) + raw
    flexible = load_request_schema(api_key, version).__header_schema__.__version__ >= 2
    return head + (header_tags if flexible else b"") + body


def encode_body(entity: Any) -> bytes:
    buf = io.BytesIO()
    entity_writer(type(entity))(buf, entity)
    return buf.getvalue()


# --- headers -------------------------------------------------------------------------------


def test_header_v1_is_parsed_and_the_body_offset_follows_client_id() -> None:
    frame = request_frame(3, 1, b"\xff\xff\xff\xff", client_id="abc")
    header, offset = parse_request_header(frame)
    assert (header.api_key, header.api_version, header.correlation_id) == (3, 1, 42)
    assert header.client_id == "abc" and header.header_version == 1
    assert offset == 8 + 2 + 3


def test_header_null_client_id() -> None:
    header, offset = parse_request_header(request_frame(3, 1, b"", client_id=None))
    assert header.client_id is None and offset == 10


def test_header_v2_tagged_fields_are_skipped() -> None:
    tags = uvarint(2) + uvarint(0) + uvarint(3) + b"abc" + uvarint(200) + uvarint(0)
    frame = request_frame(3, 12, b"BODY", header_tags=tags)
    header, offset = parse_request_header(frame)
    assert header.header_version == 2
    assert frame[offset:] == b"BODY"


def test_header_v2_tagged_field_longer_than_the_frame_is_rejected() -> None:
    tags = uvarint(1) + uvarint(0) + uvarint(1_000_000) + b"abc"
    with pytest.raises(MalformedRequestError, match="tagged field"):
        parse_request_header(request_frame(3, 12, b"", header_tags=tags))


def test_header_v2_huge_tag_count_fails_fast() -> None:
    tags = uvarint(2**31)
    with pytest.raises(MalformedRequestError):
        parse_request_header(request_frame(3, 12, b"", header_tags=tags))


def test_client_id_longer_than_the_frame_is_rejected() -> None:
    frame = struct.pack(">hhih", 3, 1, 1, 300) + b"x" * 10
    with pytest.raises(MalformedRequestError, match="client_id length"):
        parse_request_header(frame)


def test_header_too_short() -> None:
    with pytest.raises(MalformedRequestError):
        parse_request_header(b"\x00\x03\x00\x01\x00\x00\x00")


def test_unknown_api_key_and_unsupported_version_carry_the_correlation_id() -> None:
    with pytest.raises(UnknownApiError) as unknown:
        parse_request_header(struct.pack(">hhih", 9999, 0, 7, -1))
    assert unknown.value.api_key == 9999 and unknown.value.correlation_id == 7
    with pytest.raises(UnsupportedVersionError) as old:
        parse_request_header(struct.pack(">hhih", 0, 2, 8, -1))  # Produce v2: kio has no v0-2
    assert (old.value.api_key, old.value.version, old.value.correlation_id) == (0, 2, 8)


def test_api_versions_header_is_parsed_for_any_version() -> None:
    # A future ApiVersions v9 still has header v2 (v3+), so we can answer it (pitfall 2).
    frame = struct.pack(">hhih", 18, 9, 5, 1) + b"x" + b"\x00" + b"garbage body"
    header, offset = parse_request_header(frame)
    assert (header.api_key, header.api_version, header.header_version) == (18, 9, 2)
    assert frame[offset:] == b"garbage body"


# --- bodies --------------------------------------------------------------------------------


def test_decode_metadata_v1_and_v12() -> None:
    h, req = decode_request(request_frame(3, 1, struct.pack(">i", -1)))
    assert h.api_version == 1 and req.topics is None
    cls = load_request_schema(3, 12)
    body = encode_body(make(cls, topics=[{"name": "t"}], allow_auto_topic_creation=False))
    h, req = decode_request(request_frame(3, 12, body))
    assert h.header_version == 2 and req.topics[0].name == "t"


def test_decode_accepts_a_writable_memoryview_frame() -> None:
    frame = bytearray(request_frame(3, 1, struct.pack(">i", 0)))
    _, req = decode_request(memoryview(frame))
    assert req.topics == ()
    _, req = decode_request(frame)  # a bare bytearray too
    assert req.topics == ()


def test_decode_of_an_unsupported_api_versions_body_raises_with_the_header() -> None:
    frame = struct.pack(">hhih", 18, 9, 5, -1) + b"\x00\x01\x02"
    with pytest.raises(UnsupportedVersionError) as exc:
        decode_request(frame)
    assert exc.value.header is not None and exc.value.header.correlation_id == 5


@pytest.mark.parametrize(
    ("api_key", "version", "body"),
    [
        (3, 1, struct.pack(">i", 1) + struct.pack(">h", 30000) + b"ab"),  # string past the end
        (3, 1, struct.pack(">i", 2**31 - 1)),  # legacy array count 2^31-1 in 4 bytes
        (3, 12, uvarint(2**32 - 1) + b"\x00"),  # compact count 2^32-2: kio alone aborts here
        (3, 12, uvarint(2**31) + b"\x00"),
        (0, 9, b"\x00\x00\xff\xff\x00\x00\x75\x30" + uvarint(2**32 - 1)),  # produce topics
        (3, 1, struct.pack(">i", -5)),  # negative array length
    ],
)
def test_malformed_bodies_fail_fast_without_allocating(
    api_key: int, version: int, body: bytes
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(MalformedRequestError):
        decode_request(request_frame(api_key, version, body))
    assert time.perf_counter() - start < 0.05
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_hostile_count_inside_a_known_tagged_field_is_caught() -> None:
    # FetchRequest v12 tag 0 is cluster_id (a compact string); declare a string longer than
    # the tag's own length.
    cls = load_request_schema(1, 12)
    body = encode_body(make(cls, max_wait_ms=1, min_bytes=1, max_bytes=1, topics=[]))
    assert body.endswith(b"\x00")
    evil = body[:-1] + uvarint(1) + uvarint(0) + uvarint(2) + uvarint(50) + b"a"
    with pytest.raises(MalformedRequestError):
        decode_request(request_frame(1, 12, evil))


@settings(max_examples=400, deadline=None)
@given(
    key_version=st.sampled_from(
        [
            (0, 3),
            (0, 9),
            (1, 4),
            (1, 12),
            (3, 1),
            (3, 12),
            (18, 3),
            (19, 7),
            (32, 4),
            (2, 7),
            (11, 5),
            (8, 8),
            (9, 8),
        ]
    ),
    body=st.binary(max_size=200),
)
def test_random_bodies_only_raise_protocol_errors(
    key_version: tuple[int, int], body: bytes
) -> None:
    key, version = key_version
    try:
        decode_request(request_frame(key, version, body))
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_random_frames_only_raise_protocol_errors(frame: bytes) -> None:
    try:
        decode_request(frame)
    except ProtocolError:
        pass


# --- responses -----------------------------------------------------------------------------


def read_response(frame: bytes, cls: type[Any]) -> tuple[int, Any]:
    (size, corr) = struct.unpack_from(">ii", frame, 0)
    assert size == len(frame) - 4
    offset = 8
    if cls.__header_schema__.__version__ >= 1:
        assert frame[8] == 0
        offset = 9
    entity, used = entity_reader(cls)(frame, offset)
    assert offset + used == len(frame)
    return corr, entity


@pytest.mark.parametrize("version", range(5))
def test_api_versions_response_every_version_uses_header_v0(version: int) -> None:
    cls = load_response_schema(18, version)
    assert cls.__header_schema__.__version__ == 0  # kio agrees with pitfall 1
    frame = api_versions_response(77, version, TABLE, throttle_ms=0)
    corr, entity = read_response(frame, cls)
    assert corr == 77 and entity.error_code == KioErrorCode.none
    assert [(a.api_key, a.min_version, a.max_version) for a in entity.api_keys] == TABLE


def test_unsupported_api_versions_reply_is_v0_with_error_35_and_the_table() -> None:
    frame = api_versions_unsupported_response(9, TABLE)
    corr, entity = read_response(frame, load_response_schema(18, 0))
    assert corr == 9
    assert entity.error_code == KioErrorCode.unsupported_version
    assert int(entity.error_code) == ErrorCode.UNSUPPORTED_VERSION.value == 35
    assert [(a.api_key, a.min_version, a.max_version) for a in entity.api_keys] == TABLE


def test_encode_response_writes_header_v1_for_flexible_responses() -> None:
    cls = response_class(3, 12)
    frame = encode_response(5, make(cls, brokers=[{"node_id": 1, "host": "h", "port": 1}]))
    corr, entity = read_response(frame, cls)
    assert corr == 5 and entity.brokers[0].host == "h"
    cls0 = response_class(3, 0)
    frame0 = encode_response(6, make(cls0))
    assert read_response(frame0, cls0) == (6, make(cls0))
