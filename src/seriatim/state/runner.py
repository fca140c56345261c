"""The replica runner: feeds a state machine from a source, in order, exactly once.

Theory of operation
-------------------
:class:`Replica` asks its source for the records from ``machine.applied_offset`` and hands
every batch to ``machine.apply_batch``, which stores the state and the new offset in one
atomic write. Delivery is at least once (a crash loses the in-flight batch, a restart asks
again from the stored offset; a source may redeliver) and the machine skips what it already
reflects, so application is exactly once.

Optionally the replica bootstraps from the newest snapshot in ``snapshot_dir`` that is ahead
of it before following, and writes a new snapshot there every ``snapshot_every_records``
applied records (keeping the newest ``keep_snapshots``).

The lag is ``end_offset - applied_offset`` (clamped at 0; transaction markers and aborted
records at the end count as applied once the source has moved past them).

Running: :meth:`Replica.run` in the caller's thread until ``stop`` is set (or, with
``until_caught_up``, until the lag is 0); or :meth:`start` a thread and :meth:`stop` it, which
sets the event, joins, and re-raises whatever ended the thread. Errors are never swallowed: a
:class:`~seriatim.state.machine.ReplicaStorageError` or an unsupported envelope stops the
replica with the offset still at the first record it could not apply.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from seriatim.state.machine import Snapshot, StateMachine
from seriatim.state.snapshot import bootstrap, prune_snapshots
from seriatim.state.sources import Source

__all__ = ["Progress", "Replica"]


@dataclass(frozen=True, slots=True)
class Progress:
    applied_offset: int
    end_offset: int
    lag: int
    records_applied: int  # by this runner since it started
    snapshot: Snapshot | None = None  # written just now, if any


class Replica:
    """Drives ``machine`` from ``source``. The replica owns neither: close them yourself (or
    use the ``with`` block, which stops the thread and closes both)."""

    def __init__(self, machine: StateMachine, source: Source, *,
                 snapshot_dir: str | os.PathLike[str] | None = None,
                 snapshot_every_records: int = 0, keep_snapshots: int = 2,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        if snapshot_every_records < 0 or keep_snapshots < 1:
            raise ValueError("snapshot_every_records >= 0 and keep_snapshots >= 1")
        if snapshot_every_records and snapshot_dir is None:
            raise ValueError("snapshot_every_records needs a snapshot_dir")
        self.machine = machine
        self.source = source
        self._snapshot_dir = snapshot_dir
        self._snapshot_every = snapshot_every_records
        self._keep = keep_snapshots
        self._on_progress = on_progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.records_applied = 0
        self._reached = -1  # the source position up to which batches are applied (see run)
        self.bootstrapped_from: Snapshot | None = None

    # --- state --------------------------------------------------------------------------------

    @property
    def applied_offset(self) -> int:
        return self.machine.applied_offset

    @property
    def lag(self) -> int:
        """Records in the log not yet reflected by the machine."""
        done = max(self.machine.applied_offset, self._reached)
        return max(0, self.source.end_offset() - done)

    @property
    def error(self) -> BaseException | None:
        """What ended the background thread, if anything did."""
        return self._error

    # --- running ------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, until_caught_up: bool = False
            ) -> None:
        """Apply records until ``stop`` is set (or the lag is 0, with ``until_caught_up``)."""
        stop = self._stop if stop is None else stop
        if self._snapshot_dir is not None:
            self.bootstrapped_from = bootstrap(self.machine, self._snapshot_dir)
        if until_caught_up and self.lag == 0:
            return
        since_snapshot = 0
        batches = self.source.batches(self.machine.applied_offset, stop)
        try:
            for batch in batches:
                snap = None
                # The source's position moves when a batch is handed over, before it is
                # applied: it counts as done (past markers and aborted records a replica never
                # applies) only once the batch is applied, or at once for an empty batch.
                reached = self.source.position()
                if batch:
                    self.machine.apply_batch(batch)
                    self.records_applied += len(batch)
                    since_snapshot += len(batch)
                    if self._snapshot_every and since_snapshot >= self._snapshot_every:
                        snap = self._take_snapshot()
                        since_snapshot = 0
                self._reached = max(self._reached, reached)
                lag = self.lag
                if self._on_progress is not None:
                    self._on_progress(Progress(self.machine.applied_offset,
                                               self.source.end_offset(), lag,
                                               self.records_applied, snap))
                if stop.is_set() or (until_caught_up and lag == 0):
                    break
        finally:
            batches.close()

    def _take_snapshot(self) -> Snapshot:
        assert self._snapshot_dir is not None
        snap = self.machine.snapshot(self._snapshot_dir)
        prune_snapshots(self._snapshot_dir, self._keep)
        return snap

    def start(self, *, until_caught_up: bool = False) -> Replica:
        """Run in a background thread (named after the replica); see :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the replica is already running")
        self._stop.clear()
        self._error = None

        def main() -> None:
            try:
                self.run(self._stop, until_caught_up=until_caught_up)
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=main, name="seriatim-replica", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end by itself (``until_caught_up`` or an error); True if it
        ended. Re-raises the error that ended it."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._thread = None
        if self._error is not None:
            raise self._error
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Set the stop event, join the thread, re-raise what ended it (if an error did)."""
        self._stop.set()
        if not self.wait(timeout_s):
            raise TimeoutError(f"the replica thread did not stop within {timeout_s} s")

    def wait_caught_up(self, timeout_s: float = 30.0, *, min_offset: int = 0,
                       poll_s: float = 0.01) -> None:
        """Block until the lag is 0 and the applied offset is at least ``min_offset`` (the
        thread must be running); raises on error or timeout. A remote source's end offset is
        refreshed when idle, so right after a produce pass ``min_offset`` to wait for it."""
        deadline = time.monotonic() + timeout_s
        while self.lag > 0 or self.machine.applied_offset < min_offset:
            if self._error is not None or (self._thread is not None and
                                           not self._thread.is_alive()):
                self.wait(0)
                raise RuntimeError("the replica stopped before catching up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"lag still {self.lag} after {timeout_s} s")
            time.sleep(poll_s)

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            try:
                self.source.close()
            finally:
                self.machine.close()
