"""Request header parsing: the part of a frame read before anything else.

Theory of operation
-------------------
A request frame starts with a fixed part that is the same in every header version we serve
(v1 and v2)::

    int16 api_key | int16 api_version | int32 correlation_id | int16-length nullable client_id

``client_id`` stays a classic (int16-length) string even in the flexible header v2, which then
adds a tagged-field section. Which header version a request uses depends on (api_key,
api_version), and kio records it on every request schema as ``__header_schema__``; we look it
up once per pair and cache it.

ApiVersions (key 18) is special (notes pitfall 2): a client may send a version newer than any
we know, and we must still answer it. So its header version comes from Kafka's fixed rule
(v3+ uses header v2) rather than from a schema, and :func:`parse_request_header` never rejects
ApiVersions for its version; the caller compares it with what the registry serves.

Every length is checked against the bytes that remain before it is used. Failures raise
:class:`MalformedRequestError`, :class:`UnknownApiError` or :class:`UnsupportedVersionError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema

from seriatim.protocol._wire import read_uvarint
from seriatim.protocol.errors import (
    MalformedRequestError,
    UnknownApiError,
    UnsupportedVersionError,
)

__all__ = ["API_VERSIONS_KEY", "RequestHeader", "parse_request_header", "request_header_version"]

API_VERSIONS_KEY = 18

_FIXED = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """A parsed request header. ``header_version`` is 1 (classic) or 2 (flexible)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_version: int


@cache
def request_header_version(api_key: int, api_version: int) -> int:
    """The request header version kio's schema declares for (api_key, api_version).

    Raises UnknownApiError / UnsupportedVersionError when kio has no such schema.
    """
    if api_key == API_VERSIONS_KEY:
        # ApiMessageType.requestHeaderVersion for ApiVersions: header v2 from v3 on, for any
        # version, known or not (a newer client's ApiVersions must still be answered).
        return 2 if api_version >= 3 else 1
    if api_version < 0:
        raise UnsupportedVersionError(api_key, api_version)
    try:
        schema = load_request_schema(api_key, api_version)
    except UnknownAPIKey:
        raise UnknownApiError(api_key) from None
    except UnknownEntity:
        raise UnsupportedVersionError(api_key, api_version) from None
    return int(schema.__header_schema__.__version__)


def parse_request_header(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """Parse the header at the start of ``frame``; return it and the offset of the body."""
    end = len(frame)
    if end < _FIXED.size:
        raise MalformedRequestError(f"request of {end} bytes is too short for a header")
    api_key, api_version, correlation_id, cid_len = _FIXED.unpack_from(frame, 0)
    try:
        header_version = request_header_version(api_key, api_version)
    except (UnknownApiError, UnsupportedVersionError) as exc:
        # Re-raise with the correlation id, which the cached lookup does not know.
        if isinstance(exc, UnknownApiError):
            raise UnknownApiError(api_key, correlation_id) from None
        raise UnsupportedVersionError(api_key, api_version, correlation_id) from None
    pos = _FIXED.size
    client_id: str | None
    if cid_len == -1:
        client_id = None
    elif cid_len < 0 or cid_len > end - pos:
        raise MalformedRequestError(
            f"client_id length {cid_len} is invalid with {end - pos} bytes remaining"
        )
    else:
        try:
            client_id = bytes(frame[pos : pos + cid_len]).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRequestError("client_id is not valid UTF-8") from None
        pos += cid_len
    if header_version >= 2:
        pos = _skip_tagged_fields(frame, pos, end)
    header = RequestHeader(api_key, api_version, correlation_id, client_id, header_version)
    return header, pos


def _skip_tagged_fields(frame: bytes | bytearray | memoryview, pos: int, end: int) -> int:
    # The header defines no tags we use; every field is skipped, but its length is checked.
    count, pos = read_uvarint(frame, pos, end)
    for _ in range(count):  # each iteration consumes >= 2 bytes or raises, so this is bounded
        _tag, pos = read_uvarint(frame, pos, end)
        size, pos = read_uvarint(frame, pos, end)
        if size > end - pos:
            raise MalformedRequestError(
                f"header tagged field of {size} bytes with {end - pos} bytes remaining"
            )
        pos += size
    return pos
