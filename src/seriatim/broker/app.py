"""The broker application that ``seriatim serve`` and ``seriatim.testing`` run.

:func:`create_app` builds it from a :class:`~seriatim.config.BrokerConfig` whose listener ports
are already bound (the server binds first, so port 0 resolves before clients can learn it).
``start()`` opens and recovers the data directory; ``stop()`` flushes everything and writes the
clean-shutdown markers (storage's close()).
"""

from __future__ import annotations

import asyncio
import logging

from seriatim.broker.broker import Broker
from seriatim.broker.state import BrokerState, Endpoint
from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.config import BrokerConfig

log = logging.getLogger(__name__)

FLUSH_TICK_S = 0.05  # resolution of flush.ms under the 'interval' policy


class BrokerApplication:
    def __init__(self, config: BrokerConfig, clock: Clock) -> None:
        listener = config.advertised_listeners[0]
        self.state = BrokerState(config, clock, Endpoint(listener.host, listener.port))
        self._broker = Broker(self.state)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def handler(self) -> Broker:
        return self._broker

    async def start(self) -> None:
        self.state.open()
        self._tasks = [
            asyncio.create_task(self._retention(), name="seriatim-retention"),
            asyncio.create_task(self._flush_ticker(), name="seriatim-flush"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.state.close()

    async def _retention(self) -> None:
        """Kafka's log.retention.check.interval.ms, on the loop thread (the log's owner)."""
        interval_s = self.state.config.retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.state.apply_retention()
            except Exception:  # one bad partition must not stop retention for the rest
                log.exception("retention pass failed")

    async def _flush_ticker(self) -> None:
        """Drives flush.ms for topics under the 'interval' policy."""
        while True:
            await asyncio.sleep(FLUSH_TICK_S)
            self.state.flush_interval_logs()


def create_app(config: BrokerConfig, clock: Clock | None = None) -> BrokerApplication:
    return BrokerApplication(config, clock or SYSTEM_CLOCK)
