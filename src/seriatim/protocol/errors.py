"""The protocol layer's exceptions.

Every way a peer's bytes can be wrong surfaces as a :class:`ProtocolError` (or a subclass), so
the connection layer needs a single ``except ProtocolError`` to close just that connection
(docs/architecture.md, rule 8). Nothing kio raises on bad input escapes this module's callers
unwrapped.

``ProtocolError``
    ``FrameError``              the 4-byte size prefix is out of bounds
    ``MalformedRequestError``   the header or body does not parse
    ``UnknownApiError``         an API key kio (and so seriatim) has never heard of
    ``UnsupportedVersionError`` a known API at a version we cannot decode
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seriatim.errors import SeriatimError

if TYPE_CHECKING:
    from seriatim.protocol.header import RequestHeader


class ProtocolError(SeriatimError):
    """A peer sent bytes that do not follow the Kafka wire protocol."""

    #: The request header, when it was parsed before the error (useful for logging and for
    #: answering ApiVersions with UNSUPPORTED_VERSION).
    header: RequestHeader | None = None


class FrameError(ProtocolError):
    """The frame size prefix is negative, too small for a header, or above the limit."""


class MalformedRequestError(ProtocolError):
    """The request header or body could not be decoded."""


class UnknownApiError(ProtocolError):
    """The API key is not one the protocol knows."""

    def __init__(self, api_key: int, correlation_id: int | None = None) -> None:
        super().__init__(f"unknown API key {api_key}")
        self.api_key = api_key
        self.correlation_id = correlation_id


class UnsupportedVersionError(ProtocolError):
    """A known API at a version that cannot be decoded (or is not served)."""

    def __init__(self, api_key: int, version: int, correlation_id: int | None = None) -> None:
        super().__init__(f"unsupported version {version} of API key {api_key}")
        self.api_key = api_key
        self.version = version
        self.correlation_id = correlation_id
