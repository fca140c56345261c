"""Request dispatch: a frame in, the encoded response out.

Theory of operation. The server hands :meth:`Broker.handle` one complete request frame at a
time per connection. The broker parses the fixed header (once), looks the API and version up in
the registry built from ``broker/handlers``, decodes the body (Produce by hand, its records left
as views of the frame that are released when the handler returns; everything else with kio),
runs the handler, and encodes the response (kio, or the handler's own buffers for Produce and
Fetch).

Errors: a peer's mistake inside a well-formed request is an error code chosen by the handler.
A frame that cannot be parsed, or an API/version we do not serve, raises ProtocolError, and the
server closes that connection only (as Kafka does). ApiVersions is special-cased before any
body decoding, because a client may send a version newer than we know (pitfall 2 in the notes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import load_all
from seriatim.broker.state import BrokerState
from seriatim.protocol import (
    ProduceRequestView,
    ProtocolError,
    UnsupportedVersionError,
    api_versions_unsupported_response,
    decode_request_body,
    encode_response,
    parse_request_header,
)

log = logging.getLogger(__name__)

API_VERSIONS = 18

Buffers = Sequence[bytes | memoryview]


class Broker:
    """Implements the server's RequestHandler protocol."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self.registry = load_all()

    async def handle(self, frame: bytes | bytearray | memoryview, conn: object
                     ) -> Buffers | None:
        header, offset = parse_request_header(frame)
        entry = self.registry.lookup(header.api_key, header.api_version)
        if entry is None:
            if header.api_key == API_VERSIONS:
                # Newer than we serve: the v0-form UNSUPPORTED_VERSION reply with our table.
                table = self.registry.table()
                return [api_versions_unsupported_response(header.correlation_id, table)]
            raise UnsupportedVersionError(header.api_key, header.api_version)
        request = decode_request_body(header, frame, offset)
        ctx = RequestContext(header=header, state=self.state, peer=conn)
        if type(request) is ProduceRequestView:
            try:
                response = await entry.handler(ctx, request)
            finally:
                request.release()  # its records are views of the frame: none may outlive it
        else:
            response = await entry.handler(ctx, request)
        if response is None:
            return None
        if isinstance(response, list):
            return response
        return [encode_response(header.correlation_id, response)]


__all__ = ["Broker", "ProtocolError"]
