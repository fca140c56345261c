"""The broker application that ``seriatim serve`` and ``seriatim.testing`` run.

:func:`create_app` builds it from a :class:`~seriatim.config.BrokerConfig` whose listener ports
are already bound (the server binds first, so port 0 resolves before clients can learn it).
``start()`` opens and recovers the data directory; ``stop()`` flushes everything and writes the
clean-shutdown markers (storage's close()).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from seriatim.broker.broker import Broker
from seriatim.broker.groups import GroupDriver
from seriatim.broker.state import BrokerState, Endpoint
from seriatim.broker.transactions import TransactionDriver
from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.config import BrokerConfig
from seriatim.limits import LOG_CLEANER_BACKOFF_MS_DEFAULT

if TYPE_CHECKING:
    from seriatim.storage.cleaner import CleanStats

log = logging.getLogger(__name__)

FLUSH_TICK_S = 0.05  # resolution of flush.ms under the 'interval' policy


class BrokerApplication:
    def __init__(self, config: BrokerConfig, clock: Clock) -> None:
        listener = config.advertised_listeners[0]
        self.state = BrokerState(config, clock, Endpoint(listener.host, listener.port))
        self._broker = Broker(self.state)
        self._tasks: list[asyncio.Task[None]] = []
        # The log cleaner's one thread (like the fsync executor): compaction reads and writes
        # sealed segments off the loop and off the logs' locks; only its swaps lock briefly.
        self._cleaner_executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="seriatim-cleaner")

    @property
    def handler(self) -> Broker:
        return self._broker

    async def start(self) -> None:
        self.state.open()
        groups = GroupDriver(self.state)
        groups.load()  # replay __consumer_offsets before the first request is served
        groups.start()
        self.state.groups = groups
        txns = TransactionDriver(self.state)
        txns.load()  # replay __transaction_state; interrupted commits/aborts finish at start()
        self.state.transactions = txns
        txns.start()
        self._tasks = [
            asyncio.create_task(self._retention(), name="seriatim-retention"),
            asyncio.create_task(self._flush_ticker(), name="seriatim-flush"),
            asyncio.create_task(self._cleaner(), name="seriatim-cleaner"),
            asyncio.create_task(self._producer_expiry(), name="seriatim-producer-expiry"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.state.transactions is not None:
            await self.state.transactions.stop()
        if self.state.groups is not None:
            await self.state.groups.stop()
        try:
            await self.state.close()  # closing a log aborts a running clean of it
        finally:
            self._cleaner_executor.shutdown(wait=True)

    async def _cleaner(self) -> None:
        """Kafka's log cleaner thread: every log.cleaner.backoff.ms, clean the compacted logs
        that are due (dirty ratio, max.compaction.lag.ms, expiring tombstones)."""
        from seriatim.storage import LogManager

        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(LOG_CLEANER_BACKOFF_MS_DEFAULT / 1000)
            manager = self.state.manager
            logs = [plog for _, _, plog in manager.logs() if plog.config.compact]
            if logs:
                await loop.run_in_executor(self._cleaner_executor, LogManager.clean_logs, logs,
                                           manager.cleaner, None)

    async def compact(self, topic: str, now_ms: int | None = None) -> CleanStats:
        """Clean every partition of ``topic`` now, on the cleaner thread (seriatim.testing)."""
        manager = self.state.manager
        now = self.state.clock.wall_ms() if now_ms is None else now_ms
        return await asyncio.get_running_loop().run_in_executor(
            self._cleaner_executor, lambda: manager.compact(topic, now))

    async def apply_retention(self, topic: str | None = None, now_ms: int | None = None
                              ) -> int:
        """Retention now, on the loop (seriatim.testing); returns segments deleted."""
        now = self.state.clock.wall_ms() if now_ms is None else now_ms
        return self.state.manager.apply_retention(now, topic=topic)

    async def _retention(self) -> None:
        """Kafka's log.retention.check.interval.ms, on the loop thread (the log's owner)."""
        interval_s = self.state.config.retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.state.apply_retention()
            except Exception:  # one bad partition must not stop retention for the rest
                log.exception("retention pass failed")

    def expire_producers(self, now_ms: int | None = None) -> int:
        """producer.id.expiration.ms on every log now (seriatim.testing); returns how many
        producer ids were forgotten."""
        now = self.state.clock.wall_ms() if now_ms is None else now_ms
        return self.state.manager.expire_producers(now, self.state.config.producer_id_expiration_ms)

    async def _producer_expiry(self) -> None:
        """Kafka's producer.id.expiration.check.interval.ms, on the loop thread."""
        interval_s = self.state.config.producer_id_expiration_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.expire_producers()
            except Exception:  # one bad partition must not stop expiry for the rest
                log.exception("producer id expiry pass failed")

    async def _flush_ticker(self) -> None:
        """Drives flush.ms for topics under the 'interval' policy."""
        while True:
            await asyncio.sleep(FLUSH_TICK_S)
            self.state.flush_interval_logs()


def create_app(config: BrokerConfig, clock: Clock | None = None) -> BrokerApplication:
    return BrokerApplication(config, clock or SYSTEM_CLOCK)
