"""A stand-in broker app that echoes every request frame back: the server layer, alone.

Used to test and benchmark ``server/`` without storage or kio (``seriatim serve --app
seriatim.testing.echo:create_app``), e.g. to measure how fast the process accepts connections.
The response to a frame is the same bytes with their size prefix, so it is not a Kafka
response: only raw-socket clients can talk to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seriatim.clock import Clock

if TYPE_CHECKING:
    from seriatim.config import BrokerConfig
    from seriatim.server.connection import ConnectionInfo


class EchoHandler:
    """Writes each frame back, size-prefixed; counts what it handled."""

    def __init__(self) -> None:
        self.handled = 0

    async def handle(self, frame: bytes | memoryview, conn: ConnectionInfo
                     ) -> Sequence[bytes | memoryview] | None:
        self.handled += 1
        return [len(frame).to_bytes(4, "big"), frame]


class EchoApp:
    """A :class:`seriatim.server.app.BrokerApp` with nothing to open or flush."""

    def __init__(self) -> None:
        self.handler = EchoHandler()
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


def create_app(config: BrokerConfig, clock: Clock | None = None) -> EchoApp:
    """Same signature as ``seriatim.broker.create_app``."""
    return EchoApp()
