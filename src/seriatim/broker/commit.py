"""Group commit: one fsync covers every append that is waiting for durability.

Theory of operation. Appends happen on the event-loop thread and go to the page cache at once
(so offsets are assigned in arrival order and never reordered). A produce request that must be
durable before it is acknowledged (``acks=all`` under ``log.flush.policy=always``) awaits
:meth:`GroupCommitter.sync`. The committer keeps one flush running at a time in a single worker
thread: a flush fsyncs every log that was dirty when it started; requests that arrive while it
runs wait for the next one, which then covers all of them. Under load this turns N fsyncs into
about one per disk round trip.

If an fsync fails, the log raised StorageError and is offline (fail-stop, see storage/); the
waiting requests get KAFKA_STORAGE_ERROR and are never acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)


class Flushable(Protocol):
    def flush(self) -> None: ...


class GroupCommitter:
    """Coalesces fsync requests for many logs into one flush per round."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._dirty: dict[int, Flushable] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False

    def mark_dirty(self, target: Flushable) -> None:
        """Note that ``target`` has unflushed appends (cheap; no I/O)."""
        self._dirty[id(target)] = target

    def sync(self, target: Flushable) -> asyncio.Future[None]:
        """A future that completes once ``target``'s appends so far are on disk."""
        self._dirty[id(target)] = target
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((id(target), fut))
        if not self._running:
            self._start_round()
        return fut

    def flush_dirty_soon(self) -> None:
        """Start a round for dirty logs nobody waits on (acks=0/1), if none is running."""
        if self._dirty and not self._running:
            self._start_round()

    def _start_round(self) -> None:
        self._running = True
        targets = self._dirty
        waiters = self._waiters
        self._dirty = {}
        self._waiters = []
        job = asyncio.get_running_loop().run_in_executor(self._executor, _flush_all, targets)
        job.add_done_callback(lambda f: self._round_done(f, waiters))

    def _round_done(
        self,
        job: asyncio.Future[dict[int, Exception]],
        waiters: list[tuple[int, asyncio.Future[None]]],
    ) -> None:
        self._running = False
        failure = job.exception()
        errors = {} if failure is not None else job.result()
        for target_id, fut in waiters:
            if fut.done():
                continue
            err = failure or errors.get(target_id)
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result(None)
        if self._waiters or self._dirty:
            self._start_round()

    async def drain(self) -> None:
        """Flush whatever is dirty and wait for it (used at shutdown)."""
        while self._running or self._dirty:
            if not self._running:
                self._start_round()
            await asyncio.sleep(0.001)


def _flush_all(targets: dict[int, Flushable]) -> dict[int, Exception]:
    """Runs in the flush thread. Returns the failures by target id."""
    errors: dict[int, Exception] = {}
    for target_id, target in targets.items():
        try:
            target.flush()
        except Exception as exc:  # a StorageError: that log is offline now (fail-stop)
            log.error("flush failed: %s", exc)
            errors[target_id] = exc
    return errors
