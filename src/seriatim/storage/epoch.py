"""Leader-epoch cache: which leader epoch started at which offset (Kafka's LeaderEpochFileCache).

Theory of operation: an ordered list of ``(epoch, start_offset)``, both strictly increasing.
``assign`` adds an epoch when a batch of a newer epoch is appended (and drops any entry it
conflicts with: an older-or-equal epoch at a later offset, as Kafka does); ``truncate_from_end``
follows a log truncation; ``truncate_from_start`` follows a log-start-offset advance (the
first surviving entry is moved up to the new start). Every change is persisted atomically to
``leader-epoch-checkpoint`` (see :mod:`seriatim.storage.checkpoint`), which is a cache too:
recovery re-assigns epochs from the batches it scans.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right

from seriatim.storage.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from seriatim.storage.fileops import FileOps

LEADER_EPOCH_FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1

log = logging.getLogger("seriatim.storage")


class LeaderEpochCache:
    __slots__ = ("_entries", "_ops", "_persist", "path")

    def __init__(self, directory: str, ops: FileOps, *, persist: bool = True) -> None:
        self.path = os.path.join(directory, LEADER_EPOCH_FILE)
        self._ops = ops
        self._persist = persist
        self._entries: list[tuple[int, int]] = []
        try:
            loaded = read_checkpoint(self.path, 2) or []
        except CheckpointError as exc:
            log.warning("%s: %s; rebuilding the leader-epoch cache from the log", self.path, exc)
            loaded = []
        for epoch, start in loaded:
            self._entries.append((epoch, start))

    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int, *, flush: bool = True) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; True if the cache changed."""
        if epoch < 0:
            return False
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if last_epoch == epoch and last_start <= start_offset:
                return False
        self._entries = [
            (e, s) for e, s in self._entries if e < epoch and s < start_offset
        ]
        self._entries.append((epoch, start_offset))
        if flush:
            self.flush()
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's ``endOffsetFor``: (largest epoch <= ``epoch``, offset where it ended)."""
        if epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epoch == self._entries[-1][0]:
            return epoch, log_end_offset
        epochs = [e for e, _ in self._entries]
        higher = bisect_right(epochs, epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return epoch, self._entries[0][1]
        return self._entries[higher - 1][0], self._entries[higher][1]

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries starting at or after ``end_offset`` (the log was truncated there)."""
        kept = [(e, s) for e, s in self._entries if s < end_offset]
        if kept != self._entries:
            self._entries = kept
            self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: keep the epoch covering it, moved up."""
        below = [i for i, (_, s) in enumerate(self._entries) if s <= start_offset]
        if not below:
            return
        last = below[-1]
        epoch, start = self._entries[last]
        kept = [(epoch, max(start, start_offset)), *self._entries[last + 1 :]]
        if kept != self._entries:
            self._entries = kept
            self.flush()

    def clear(self) -> None:
        if self._entries:
            self._entries = []
            self.flush()

    def flush(self) -> None:
        if self._persist:
            write_checkpoint(self.path, [(e, s) for e, s in self._entries], self._ops)
