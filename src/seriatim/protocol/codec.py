"""The kio glue: request decoding and response encoding for every API.

Theory of operation
-------------------
``decode_request(frame)`` = :func:`parse_request_header` + :func:`decode_body`. The body
reader is kio's native ``entity_reader`` for ``load_request_schema(key, version)``, cached per
(key, version) together with our structural pre-check (:mod:`seriatim.protocol._guard`, which
keeps a hostile array count from aborting the process inside kio). Whatever kio raises on bad
bytes (``DecodeError`` subclasses, ``ValueError``, ``TypeError``, pyo3 ``PanicException``)
becomes :class:`MalformedRequestError`; an unknown version becomes
:class:`UnsupportedVersionError`. Trailing bytes after the body are ignored, as Apache Kafka
does.

The broker decodes bodies with :func:`decode_request_body`: Produce v3..v11 goes to the
hand-written :func:`~seriatim.protocol.produce.decode_produce_request` (records stay views of
the frame instead of kio's per-partition ``bytes`` copies), every other request to
:func:`decode_body`. Both raise the same errors, with ``.header`` set.

``encode_response(correlation_id, entity)`` writes the 4-byte size, the response header (v0,
or v1 with its empty tagged-field byte, as the entity's ``__header_schema__`` says; ApiVersions
is always v0, notes pitfall 1) and the body with kio's writer.

ApiVersions gets its own helpers because it is negotiated before anything else:
:func:`api_versions_response` builds the reply for any version from the registry's table, and
:func:`api_versions_unsupported_response` is the **v0-format** reply with UNSUPPORTED_VERSION
that a client sending a too-new ApiVersions expects (pitfall 2). The caller detects that case
from the header alone (key 18, version above the served max) before decoding any body.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from seriatim.errors import ErrorCode
from seriatim.protocol._guard import checker_for
from seriatim.protocol.entities import kio_error, make, nested
from seriatim.protocol.errors import (
    MalformedRequestError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
)
from seriatim.protocol.header import API_VERSIONS_KEY, RequestHeader, parse_request_header
from seriatim.protocol.produce import PRODUCE_KEY, PRODUCE_VERSIONS, decode_produce_request

__all__ = [
    "api_versions_response",
    "api_versions_unsupported_response",
    "decode_body",
    "decode_request",
    "decode_request_body",
    "encode_response",
    "request_class",
]

_I32 = struct.Struct(">i")
_SIZE_AND_CORRELATION = struct.Struct(">ii")

_BodyDecoder = Callable[[Any, int], Any]


@cache
def request_class(api_key: int, version: int) -> type[Any]:
    """kio's request entity class for (api_key, version)."""
    try:
        return load_request_schema(api_key, version)
    except UnknownAPIKey:
        raise UnknownApiError(api_key) from None
    except UnknownEntity:
        raise UnsupportedVersionError(api_key, version) from None


@cache
def _body_decoder(api_key: int, version: int) -> _BodyDecoder:
    cls = request_class(api_key, version)
    check = checker_for(cls)  # compiled once per (key, version) with the reader
    read = entity_reader(cls)

    def decode(buf: Any, offset: int) -> Any:
        check(buf, offset, len(buf))  # sizes first: kio must never see a hostile count
        entity, _size = read(buf, offset)
        return entity

    return decode


def decode_body(header: RequestHeader, frame: bytes | bytearray | memoryview, offset: int) -> Any:
    """Decode the body of ``frame`` starting at ``offset`` as the request ``header`` names."""
    try:
        decode = _body_decoder(header.api_key, header.api_version)
    except (UnknownApiError, UnsupportedVersionError) as exc:
        exc.header = header
        raise
    if not isinstance(frame, bytes) and not memoryview(frame).readonly:
        frame = memoryview(frame).toreadonly()  # kio's reader rejects writable buffers
    try:
        return decode(frame, offset)
    except ProtocolError as exc:
        exc.header = header
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # kio raises many types; pyo3 panics are BaseException
        err = MalformedRequestError(
            f"malformed {header.api_key} v{header.api_version} request body: "
            f"{type(exc).__name__}: {exc}"
        )
        err.header = header
        raise err from exc


def decode_request_body(
    header: RequestHeader, frame: bytes | bytearray | memoryview, offset: int
) -> Any:
    """The broker's body decoder: Produce v3..v11 by hand, copy-free (a
    :class:`~seriatim.protocol.produce.ProduceRequestView` whose records are views of
    ``frame``, valid while ``frame`` is), every other request with kio (:func:`decode_body`)."""
    if header.api_key == PRODUCE_KEY and header.api_version in PRODUCE_VERSIONS:
        try:
            return decode_produce_request(frame, offset, header.api_version)
        except ProtocolError as exc:
            exc.header = header
            raise
    return decode_body(header, frame, offset)


def decode_request(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, Any]:
    """Decode a whole request frame (without its size prefix) into (header, kio entity)."""
    header, offset = parse_request_header(frame)
    return header, decode_body(header, frame, offset)


def encode_response(correlation_id: int, entity: Any) -> bytes:
    """The complete response frame (size prefix included) for a kio response entity."""
    buf = io.BytesIO()
    buf.write(_SIZE_AND_CORRELATION.pack(0, correlation_id))
    if entity.__header_schema__.__version__ >= 1:
        buf.write(b"\x00")  # response header v1: an empty tagged-field section
    entity_writer(type(entity))(buf, entity)
    out = buf.getbuffer()
    _I32.pack_into(out, 0, len(out) - 4)
    del out  # release the export before getvalue()
    return buf.getvalue()


def api_versions_response(
    correlation_id: int,
    version: int,
    table: Iterable[tuple[int, int, int]],
    error: ErrorCode = ErrorCode.NONE,
    throttle_ms: int = 0,
) -> bytes:
    """An ApiVersions response of ``version`` advertising ``table`` ((key, min, max) rows)."""
    cls = load_response_schema(API_VERSIONS_KEY, version)
    item = nested(cls, "api_keys")
    rows = tuple(make(item, api_key=k, min_version=lo, max_version=hi) for k, lo, hi in table)
    fields: dict[str, Any] = {"error_code": kio_error(error), "api_keys": rows}
    if version >= 1:
        fields["throttle_time_ms"] = throttle_ms
    return encode_response(correlation_id, make(cls, **fields))


def api_versions_unsupported_response(
    correlation_id: int, table: Iterable[tuple[int, int, int]]
) -> bytes:
    """The v0-format UNSUPPORTED_VERSION reply to an ApiVersions request we cannot parse.

    librdkafka fails to parse it as v3 and falls back to v0; kafka-python reads the table and
    retries at our maximum (notes §2, pitfall 2).
    """
    return api_versions_response(correlation_id, 0, table, error=ErrorCode.UNSUPPORTED_VERSION)
