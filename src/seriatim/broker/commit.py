"""Group commit: one fsync covers every append that is waiting for durability.

Theory of operation. Appends happen on the event-loop thread and go to the page cache at once
(so offsets are assigned in arrival order and never reordered). A produce request that must be
durable before it is acknowledged (``acks=all`` under ``flush.policy=always``) awaits
:meth:`GroupCommitter.sync`. One long-lived flusher thread runs rounds: a round takes every log
that is dirty at that moment, fsyncs each, and then resolves the futures of the requests that
were waiting on those logs (one ``call_soon_threadsafe`` per round). Requests that arrive while
a round runs wait for the next one, which then covers all of them. Under load this turns N
fsyncs into about one per disk round trip. (A long-lived thread rather than an executor submit
per round: the submit and future plumbing cost ~17% of the broker's produce CPU in a profile.)

``syncfs`` (opt-in, ``log.flush.syncfs=true``): a round over several logs fsyncs each file in
turn, and on ext4 every fdatasync of an appended file is a journal commit: six partitions
took 0.53 ms at the median (1.0 ms p99) against 0.13-0.16 ms for one ``syncfs(2)`` of the
file system holding them (measured on this project's VM disk; end to end at 10k records/s
over 6 partitions, docs/benchmarks.md: p50 1.65 -> 0.82 ms, p99 3.3 -> 2-3 ms). The catch:
syncfs writes back *everything* dirty on that file system, other processes' files too, so
it is for a data directory on a disk of its own; hence opt-in. Each log's data is captured first
(``flush_begin``: what the fsync must cover), then one syncfs per file system, then each log
finishes (``flush_end(data_synced=True)``). Needs Linux >= 5.8, where syncfs reports
writeback errors; if it fails, every log of the round is flushed on its own, so an error is
still attributed to the log it belongs to (fail-stop for that log only).

If an fsync fails, that log raised StorageError and is offline (fail-stop, see storage/); the
requests waiting on it get the error and are never acknowledged; other logs are unaffected.

Ownership: the dirty set and the waiter list are shared between the loop thread and the flusher
thread and only touched under ``_cond``; the logs' flush() is thread-safe against appends.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Flushable(Protocol):
    def flush(self) -> None: ...


class GroupCommitter:
    """Coalesces fsync requests for many logs into one flush per round, in one thread."""

    def __init__(self, thread_name: str = "seriatim-fsync", *, use_syncfs: bool = False
                 ) -> None:
        if use_syncfs and not syncfs_supported():
            raise ValueError("log.flush.syncfs needs Linux >= 5.8 (syncfs must report errors)")
        self._syncfs = use_syncfs
        self._cond = threading.Condition()
        self._dirty: dict[int, Flushable] = {}
        self._waiters: list[_Waiter] = []
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def mark_dirty(self, target: Flushable) -> None:
        """Note that ``target`` has unflushed appends (no I/O; flushed by the next round)."""
        with self._cond:
            self._dirty[id(target)] = target

    def sync(self, target: Flushable) -> asyncio.Future[None]:
        """A future that completes once ``target``'s appends so far are on disk."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._cond:
            self._dirty[id(target)] = target
            self._waiters.append((id(target), fut))
            self._cond.notify()
        return fut

    def flush_dirty_soon(self) -> None:
        """Start a round for dirty logs nobody waits on (acks=0/1)."""
        with self._cond:
            if self._dirty:
                self._cond.notify()

    async def drain(self) -> None:
        """Wait until everything marked dirty so far is flushed (used at shutdown)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._cond:
            if not self._dirty and not self._busy:
                return
            self._waiters.append((None, fut))  # a barrier: resolved by the next round
            self._cond.notify()
        await fut

    def close(self) -> None:
        """Stop the flusher thread after a last round over whatever is dirty."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._waiters and not self._closed:
                    self._cond.wait()
                if self._closed and not self._dirty and not self._waiters:
                    return
                targets, waiters = self._dirty, self._waiters
                self._dirty, self._waiters = {}, []
                self._busy = True
            if self._syncfs and len(targets) > 1:
                errors = _flush_shared(targets)
            else:
                errors = _flush_all(targets)
            _resolve(waiters, errors)
            with self._cond:
                self._busy = False


_Waiter = tuple["int | None", "asyncio.Future[None]"]


def _resolve(waiters: list[_Waiter], errors: dict[int, Exception]) -> None:
    """Hand each waiter its outcome on its own loop, one callback per loop per round."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], Exception | None]]]
    by_loop = {}
    for target_id, fut in waiters:
        err = errors.get(target_id) if target_id is not None else None
        by_loop.setdefault(fut.get_loop(), []).append((fut, err))
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _settle(outcomes: list[tuple[asyncio.Future[None], Exception | None]]) -> None:
    for fut, err in outcomes:
        if fut.done():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(None)


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


# --- syncfs -----------------------------------------------------------------------------------


def syncfs_supported() -> bool:
    """Linux >= 5.8: syncfs(2) reports writeback errors there (earlier kernels returned 0)."""
    if platform.system() != "Linux":
        return False
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


_libc: Any = None


def _syncfs(path: str) -> None:
    """syncfs(2) of the file system holding ``path`` (releases the GIL: a ctypes call)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _flush_shared(targets: dict[int, Flushable]) -> dict[int, Exception]:
    """One syncfs per file system for the data of every target; per-target flushes for those
    that cannot share it, and for all of them if the syncfs fails."""
    errors: dict[int, Exception] = {}
    begun: list[tuple[int, Any, Any]] = []  # (id, target, ticket)
    dirs: dict[int, str] = {}  # st_dev -> a directory on it
    rest: dict[int, Flushable] = {}
    synced = False  # until every syncfs succeeded: then flush_end skips the fdatasyncs
    try:
        for target_id, target in targets.items():
            begin = getattr(target, "flush_begin", None)
            directory = getattr(target, "directory", None)
            if begin is None or directory is None:
                rest[target_id] = target
                continue
            try:
                ticket = begin()
            except Exception as exc:  # offline or closed: its waiters get the error
                errors[target_id] = exc
                continue
            if ticket is not None:
                begun.append((target_id, target, ticket))
                dirs.setdefault(os.stat(directory).st_dev, directory)
        try:
            for directory in dirs.values():
                _syncfs(directory)
            synced = True
        except OSError as exc:
            log.warning("%s; flushing each log on its own instead", exc)
    finally:
        for target_id, target, ticket in begun:
            try:
                target.flush_end(ticket, data_synced=synced)
            except Exception as exc:  # a StorageError: that log is offline now
                log.error("flush failed: %s", exc)
                errors[target_id] = exc
    errors.update(_flush_all(rest))
    return errors
