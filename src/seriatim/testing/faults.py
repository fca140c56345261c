"""Fault injection at the request boundary, for tests: drop the response of chosen requests.

:class:`DropResponses` wraps a broker app (an :data:`~seriatim.server.app.AppFactory`): its
handler runs every request as usual, but for the requests its predicate picks (by default the
``nth`` Produce request, counting from 1) it throws the response away and closes the
connection, which is what a client sees when a response is lost on the network. The request
*was* processed, so the client's retry exercises idempotence. Nothing outside
``seriatim.testing`` knows about it.

::

    drop = DropResponses(api_key=0, nth={3})
    with seriatim.testing.broker(app_factory=drop.factory()) as b: ...
    assert drop.dropped == 1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.config import BrokerConfig
from seriatim.protocol import ProtocolError, parse_request_header
from seriatim.server.app import AppFactory, BrokerApp, broker_app_factory


class DropResponses:
    """Drop the responses of the ``nth`` requests (1-based) with ``api_key``."""

    def __init__(self, *, api_key: int = 0, nth: set[int] | frozenset[int] = frozenset({1}),
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.api_key = api_key
        self.nth = frozenset(nth)
        self.seen = 0
        self.dropped = 0
        self._clock = clock

    def factory(self, inner: AppFactory | None = None) -> AppFactory:
        base = inner or broker_app_factory(self._clock)

        def make(config: BrokerConfig) -> BrokerApp:
            return _App(base(config), self)

        return make

    async def handle(self, handler: Any, frame: bytes | memoryview, conn: object
                     ) -> Sequence[bytes | memoryview] | None:
        header, _ = parse_request_header(frame)
        response = await handler.handle(frame, conn)
        if header.api_key == self.api_key:
            self.seen += 1
            if self.seen in self.nth:
                self.dropped += 1
                raise ProtocolError(f"test fault: dropped the response to request {self.seen}")
        result: Sequence[bytes | memoryview] | None = response
        return result


class _Handler:
    def __init__(self, inner: Any, faults: DropResponses) -> None:
        self._inner, self._faults = inner, faults

    async def handle(self, frame: bytes | memoryview, conn: Any
                     ) -> Sequence[bytes | memoryview] | None:
        return await self._faults.handle(self._inner, frame, conn)


class _App:
    def __init__(self, inner: BrokerApp, faults: DropResponses) -> None:
        self._inner = inner
        self._faults = faults

    @property
    def handler(self) -> Any:
        return _Handler(self._inner.handler, self._faults)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    def __getattr__(self, name: str) -> Any:  # compact(), apply_retention(), state ...
        return getattr(self._inner, name)
