"""What the coordinator drivers share: calls by token, durable replies, one timer, the
internal topic.

Theory of operation. A pure coordinator (``seriatim.coordinator``) answers a call with an
output whose replies are keyed by token, possibly in a later call's output. A driver subclass
turns that into ``await driver.call(core.method, request)``: :meth:`call` makes a token and a
future, runs the method, hands the output to the subclass's :meth:`_process` (append the
records, replay them), and the future resolves when :meth:`_reply_after` has seen every
touched partition fsynced by the broker's group commit; if that fails, the replies become the
subclass's failure value (fail-stop: never acknowledge what is not durable). After every call
and tick, one ``loop.call_later`` is re-armed at the core's next deadline.

Everything here runs on the event-loop thread; the driver is its core's only owner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from seriatim.errors import invariant

if TYPE_CHECKING:
    from seriatim.broker.state import BrokerState
    from seriatim.storage import PartitionLog

log = logging.getLogger(__name__)

# (topic, partition, log) of every partition an output's records went to.
Written = list[tuple[str, int, "PartitionLog"]]

MAX_TIMER_S = 3600.0  # re-arm at least hourly even when the core has nothing due


class CoordinatorDriver:
    """Base of GroupDriver and TransactionDriver; subclasses implement the abstract hooks."""

    name = "coordinator"

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self._tokens = itertools.count()
        self._waiting: dict[Any, asyncio.Future[Any]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reply_tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- hooks -------------------------------------------------------------------------------

    def _process(self, out: Any) -> None:
        """Append and replay ``out``'s records, then release its replies (subclass)."""
        raise NotImplementedError

    def _tick(self) -> Any:
        """The core's timer work: an output like a call's (subclass)."""
        raise NotImplementedError

    def _delay_s(self) -> float:
        """Seconds until the core's next deadline (subclass)."""
        raise NotImplementedError

    def _failed(self, result: Any) -> Any:
        """The reply that replaces ``result`` when its records could not be made durable."""
        raise NotImplementedError

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._rearm()

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reply_tasks:
            await asyncio.gather(*self._reply_tasks, return_exceptions=True)
        for fut in self._waiting.values():
            fut.cancel()  # a call still waiting (e.g. a JoinGroup): its connection is closing
        self._waiting.clear()

    # --- calls -------------------------------------------------------------------------------

    async def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Run ``method(token, *args)`` on the core and await the token's reply."""
        invariant(self._loop is not None, f"{self.name} driver used before start()")
        token = next(self._tokens)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[token] = fut
        try:
            self._process(method(token, *args))
        finally:
            self._rearm()
        try:
            return await fut
        finally:
            self._waiting.pop(token, None)

    def _reply_after(self, written: Written, replies: list[tuple[Any, Any]]) -> None:
        """Resolve ``replies`` once every partition in ``written`` is durable."""
        if not written:
            self._resolve(replies)
            return
        task = asyncio.get_running_loop().create_task(self._reply_when_durable(written, replies))
        self._reply_tasks.add(task)
        task.add_done_callback(self._reply_tasks.discard)

    async def _reply_when_durable(self, written: Written, replies: list[tuple[Any, Any]]) -> None:
        try:
            for topic, p, plog in written:
                await self.state.wait_durable(topic, p, plog)
        except Exception as exc:  # a failed fsync: never acknowledge (fail-stop)
            log.error("%s records not durable: %s", self.name, exc)
            replies = [(t, self._failed(r)) for t, r in replies]
        self._resolve(replies)

    def _resolve(self, replies: list[tuple[Any, Any]]) -> None:
        for token, result in replies:
            fut = self._waiting.get(token)
            if fut is not None and not fut.done():
                fut.set_result(result)

    # --- the internal topic ------------------------------------------------------------------

    def _ensure_internal_topic(self, topic: str, partitions: int, segment_bytes: str) -> int:
        """The partition count of ``topic``, creating it compacted and fsynced if missing."""
        manager = self.state.manager
        info = manager.topics().get(topic)
        if info is not None:
            return info.partitions
        configs: Mapping[str, str] = {
            "cleanup.policy": "compact",
            "flush.policy": "always",
            "segment.bytes": segment_bytes,
            "compression.type": "producer",
        }
        manager.create_topic(topic, partitions, dict(configs))
        log.info("created %s with %d partition(s)", topic, partitions)
        return partitions

    # --- the timer ---------------------------------------------------------------------------

    def _rearm(self) -> None:
        if self._loop is None or self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay_s = min(max(self._delay_s(), 0.0), MAX_TIMER_S)
        self._timer = self._loop.call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._process(self._tick())
        except Exception:  # a bug in one tick must not stop every timer of the coordinator
            log.exception("%s tick failed", self.name)
        self._rearm()
