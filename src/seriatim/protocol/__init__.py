"""The Kafka wire protocol, pure: framing, headers, kio glue, hot-path encoders, registry.

No sockets, no asyncio, no storage: bytes in, values out (docs/architecture.md). The server
layer feeds :class:`FrameDecoder`; the broker reads each frame with :func:`parse_request_header`
and :func:`decode_request_body` (Produce by hand with its records left in the frame, everything
else through kio), and writes what :func:`encode_response`, :func:`encode_produce_response`
and :func:`encode_fetch_response` return. See each module's docstring for its theory of
operation.
"""

from __future__ import annotations

from seriatim.protocol.codec import (
    api_versions_response,
    api_versions_unsupported_response,
    decode_body,
    decode_request,
    decode_request_body,
    encode_response,
    request_class,
)
from seriatim.protocol.entities import kio_error, make, nested, response_class
from seriatim.protocol.errors import (
    FrameError,
    MalformedRequestError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
)
from seriatim.protocol.fetch import FETCH_VERSIONS, FetchPartitionData, encode_fetch_response
from seriatim.protocol.framing import MIN_FRAME_BYTES, FrameDecoder
from seriatim.protocol.header import (
    API_VERSIONS_KEY,
    RequestHeader,
    parse_request_header,
    request_header_version,
)
from seriatim.protocol.produce import (
    PRODUCE_KEY,
    PRODUCE_VERSIONS,
    ProducePartitionData,
    ProducePartitionResult,
    ProduceRequestView,
    ProduceTopicData,
    decode_produce_request,
    encode_produce_response,
)
from seriatim.protocol.registry import ApiEntry, ApiRegistry, api_name

__all__ = [
    "API_VERSIONS_KEY",
    "FETCH_VERSIONS",
    "MIN_FRAME_BYTES",
    "PRODUCE_KEY",
    "PRODUCE_VERSIONS",
    "ApiEntry",
    "ApiRegistry",
    "FetchPartitionData",
    "FrameDecoder",
    "FrameError",
    "MalformedRequestError",
    "ProducePartitionData",
    "ProducePartitionResult",
    "ProduceRequestView",
    "ProduceTopicData",
    "ProtocolError",
    "RequestHeader",
    "UnknownApiError",
    "UnsupportedVersionError",
    "api_name",
    "api_versions_response",
    "api_versions_unsupported_response",
    "decode_body",
    "decode_produce_request",
    "decode_request",
    "decode_request_body",
    "encode_fetch_response",
    "encode_produce_response",
    "encode_response",
    "kio_error",
    "make",
    "nested",
    "parse_request_header",
    "request_class",
    "request_header_version",
    "response_class",
]
