"""Group commit: many appends waiting for durability share one fsync round, and a failed fsync
fails only the waiters of the log that failed (fail-stop for that log, the others go on)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from seriatim.broker.commit import GroupCommitter
from seriatim.errors import StorageError


class SlowLog:
    """A Flushable whose flush takes a while and counts how often it ran (in the flush thread)."""

    def __init__(self, fail: bool = False, delay_s: float = 0.02) -> None:
        self.flushes = 0
        self.fail = fail
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def flush(self) -> None:
        self.threads.add(threading.current_thread().name)
        threading.Event().wait(self.delay_s)
        self.flushes += 1
        if self.fail:
            raise StorageError("fsync failed: EIO")


def _run(coro_fn):  # type: ignore[no-untyped-def]
    committer = GroupCommitter(thread_name="test-fsync")
    try:
        return asyncio.run(coro_fn(committer))
    finally:
        committer.close()
        assert not committer._thread.is_alive()


def test_many_waiters_share_few_flush_rounds() -> None:
    log = SlowLog()

    async def scenario(committer: GroupCommitter) -> None:
        waits = []
        for _ in range(50):
            waits.append(committer.sync(log))
            await asyncio.sleep(0)  # requests keep arriving while a round is running
        await asyncio.gather(*waits)

    _run(scenario)
    # 50 requests, each durable before it completes, but far fewer fsyncs: the first round
    # covers the first request, the second covers everything that arrived meanwhile.
    assert 1 <= log.flushes <= 3
    assert log.threads == {"test-fsync"}  # never on the event-loop thread


def test_a_request_arriving_during_a_round_waits_for_the_next_one() -> None:
    log = SlowLog(delay_s=0.05)
    order: list[str] = []

    async def scenario(committer: GroupCommitter) -> None:
        first = committer.sync(log)
        await asyncio.sleep(0.01)  # the first round is running now
        second = committer.sync(log)
        await first
        order.append(f"first after {log.flushes}")
        await second
        order.append(f"second after {log.flushes}")

    _run(scenario)
    # The second append came after the first fsync started, so it needs a fsync of its own.
    assert order == ["first after 1", "second after 2"]


def test_a_failed_flush_fails_only_that_logs_waiters() -> None:
    good, bad = SlowLog(), SlowLog(fail=True)

    async def scenario(committer: GroupCommitter) -> tuple[object, object]:
        results = await asyncio.gather(committer.sync(good), committer.sync(bad),
                                       return_exceptions=True)
        return results[0], results[1]

    ok, failed = _run(scenario)
    assert ok is None
    assert isinstance(failed, StorageError)


def test_drain_flushes_what_nobody_waits_for() -> None:
    log = SlowLog()

    async def scenario(committer: GroupCommitter) -> None:
        committer.mark_dirty(log)  # an acks=1 append: nobody awaits its fsync
        await committer.drain()

    _run(scenario)
    assert log.flushes == 1


@pytest.mark.parametrize("rounds", [1, 5])
def test_nothing_dirty_means_no_flush(rounds: int) -> None:
    log = SlowLog()

    async def scenario(committer: GroupCommitter) -> None:
        for _ in range(rounds):
            committer.flush_dirty_soon()
            await committer.drain()

    _run(scenario)
    assert log.flushes == 0


def test_close_runs_a_last_round_and_stops_the_thread() -> None:
    log = SlowLog()
    committer = GroupCommitter(thread_name="test-fsync-close")
    committer.mark_dirty(log)
    committer.close()
    assert log.flushes == 1
    assert not any(t.name == "test-fsync-close" for t in threading.enumerate())
