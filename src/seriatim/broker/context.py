"""What a handler gets: the request header, the connection, and the broker's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seriatim.broker.state import BrokerState
    from seriatim.protocol import RequestHeader


@dataclass(frozen=True, slots=True)
class RequestContext:
    header: RequestHeader
    state: BrokerState
    peer: object  # the server's connection info (host, port); opaque to handlers
