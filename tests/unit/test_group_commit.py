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


# --- small rounds run inline on the event-loop thread -------------------------------------


class TrackingLog(SlowLog):
    """Also records whether two rounds ever flushed at the same time."""

    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        super().__init__(fail=fail, delay_s=delay_s)
        self.active = 0
        self.overlapped = False

    def flush(self) -> None:
        self.active += 1
        self.overlapped |= self.active > 1
        try:
            super().flush()
        finally:
            self.active -= 1


def test_a_small_round_runs_inline_on_the_loop_thread() -> None:
    log = TrackingLog()

    async def scenario(committer: GroupCommitter) -> str:
        committer.mark_dirty(log, 100)
        await committer.sync(log, 0)
        return threading.current_thread().name

    loop_thread = _run(scenario)
    assert log.flushes == 1
    assert log.threads == {loop_thread}


def test_acks_1_appends_are_flushed_inline_after_the_current_callbacks() -> None:
    log = TrackingLog()

    async def scenario(committer: GroupCommitter) -> tuple[int, int]:
        committer.mark_dirty(log, 100)
        committer.flush_dirty_soon()
        before = log.flushes  # call_soon: not yet, the caller's response goes out first
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return before, log.flushes

    assert _run(scenario) == (0, 1)


def test_large_or_unsized_rounds_go_to_the_thread() -> None:
    big, unsized = TrackingLog(), TrackingLog()

    async def scenario(committer: GroupCommitter) -> None:
        committer.mark_dirty(big, 10 << 20)
        await committer.sync(big, 0)
        await committer.sync(unsized)  # size unknown

    _run(scenario)
    assert big.threads == {"test-fsync"}
    assert unsized.threads == {"test-fsync"}


def test_an_inline_round_never_overlaps_a_thread_round() -> None:
    log = TrackingLog(delay_s=0.05)

    async def scenario(committer: GroupCommitter) -> None:
        first = committer.sync(log, 10 << 20)  # a big round: the thread, for 50 ms
        await asyncio.sleep(0.01)
        second = committer.sync(log, 10)  # small, but the thread is busy: queue behind it
        await asyncio.gather(first, second)

    _run(scenario)
    assert log.flushes == 2
    assert not log.overlapped
    assert log.threads == {"test-fsync"}


def test_a_failed_inline_flush_fails_its_waiters() -> None:
    bad = TrackingLog(fail=True)

    async def scenario(committer: GroupCommitter) -> BaseException | None:
        committer.mark_dirty(bad, 10)
        results = await asyncio.gather(committer.sync(bad, 0), return_exceptions=True)
        return results[0]

    err = _run(scenario)
    assert isinstance(err, StorageError)
    assert bad.threads == {threading.current_thread().name}  # asyncio.run's thread = this one
