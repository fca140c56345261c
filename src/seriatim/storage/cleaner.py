"""The log cleaner: compaction of ``cleanup.policy=compact`` logs, and its crash-safe swap.

Theory of operation
-------------------
A compacted log keeps, for every key, at least the record with the latest offset (Kafka's
``LogCleaner``). The log is split at the **first dirty offset** (``cleaner-offset-checkpoint``
in the partition directory; the log start when missing): below it the *clean* section, already
compacted once; from it up to the **first uncleanable offset** the *dirty* section. Only sealed
segments are cleanable (never the active one), and with ``min.compaction.lag.ms`` only those
whose newest record is at least that old. A log is cleaned when the dirty section's share of the
cleanable bytes reaches ``min.cleanable.dirty.ratio``, or when its oldest dirty record is older
than ``max.compaction.lag.ms``; an explicit :meth:`PartitionLog.compact` ignores the ratio.

One **pass**:

1. *Map.* Walk the dirty section batch by batch and record ``digest(key) -> base offset of the
   batch holding the key's latest record`` in an :class:`OffsetMap` (16-byte BLAKE2b digests,
   as Kafka's SkimpyOffsetMap keeps 16-byte MD5s; a key shorter than 16 bytes is its own
   digest). The map holds at most ``dedupe_buffer_bytes / 24 * load_factor`` entries; when the
   next batch might not fit, mapping stops at that batch boundary, ``end``, and the rest of the
   dirty section is left to the next pass. Memory is bounded whatever the number of keys. It
   also counts, per mapped batch, the keys whose latest record it still holds
   (:meth:`OffsetMap.map_batch`).
2. *Clean.* Every cleanable segment with a base offset below ``end`` (clean section included:
   it may hold values the dirty section superseded) is rewritten. Consecutive segments are
   **grouped** while their total size fits ``segment.bytes`` (and their index entries
   ``segment.index.bytes``, their offsets an int32 delta): one output segment per group, named
   by the group's first base offset, so small cleaned segments merge. A record at offset ``o``
   with ``o < end`` is dropped when it has no key, when the map holds a larger offset for its
   key (superseded), or when it is a tombstone (null value) whose timestamp is more than
   ``delete.retention.ms`` before now (the cleaner's clock). Records at ``o >= end`` are kept.
   A batch that keeps every record is copied byte for byte; a batch that keeps none is dropped
   (its offsets become a gap) -- a mapped batch whose count says so is decided without being
   read; otherwise each run of consecutive kept offsets becomes one batch (same codec,
   timestamp type, producer fields and leader epoch), its records' bytes copied with new
   deltas (:mod:`seriatim.records.rawscan`): seriatim's
   ``validate_batch`` requires ``record_count == lastOffsetDelta + 1``, so gaps live *between*
   batches, never inside one. Offsets never change; the log start and end offsets never move.
   Transactions, as in Kafka's cleaner: the cleanable section ends below the first unstable
   offset (an open transaction may still commit or abort); batches of aborted transactions
   (known from the ``.txnindex``) are neither mapped -- so they never supersede an earlier
   committed value -- nor kept; control batches (markers) are kept verbatim (Kafka removes
   them once no longer needed; not done yet).
3. *Swap* each group's output in (below), in ascending offset order, then move the checkpoint
   to ``end``. Passes repeat until the dirty section is consumed.

Reading, mapping and writing happen **off the log's locks**, on ``dup``'ed descriptors of the
sealed segments (appends only touch the active segment); writes and reads are throttled to
``io_max_bytes_per_second``. Only the swap takes ``_flush_lock`` and ``_lock``, briefly (a few
renames and a directory fsync). At swap time the group must still be in the log, unchanged
(same objects, same sizes, not the active segment): a truncation, retention run or
``delete_records_before`` that raced with the pass makes the cleaner drop its output instead.
Replaced segments' descriptors are closed only after a grace period, so a reader that got a
:class:`FileSlice` just before the swap still reads the (unlinked) old file.

**The swap protocol** for a group ``[S1..Sn]`` (``X`` = S1's base offset)::

    1. write X.log.cleaned, fdatasync it
    2. rename X.log.cleaned -> X.log.swap; fsync dir          <- the commit point
    3. rename each Si.{log,index,timeindex} -> *.deleted
    4. rename X.log.swap -> X.log; fsync dir; write X.index / X.timeindex (fsynced)
    5. unlink the *.deleted files; fsync dir

Crash states, resolved by :func:`recover_cleaner_files` at the start of every writer open
(Kafka's LogLoader does the same): ``*.cleaned`` is an uncommitted output -- deleted, the old
segments are intact; ``*.deleted`` are replaced segments -- deleted; ``X.log.swap`` is a
committed output -- the swap is completed: every ``.log`` with a base offset in ``[X,
max(next, X + 1))`` (``next`` = the swap file's last offset + 1) and its indexes are deleted,
then the swap is renamed to ``X.log`` (its index is rebuilt by recovery). A group segment that
survives this rule starts after the swap's last offset, so every record in it was dropped by the
pass: superseded values (a newer one follows) or expired tombstones (no older value of the key
survived in the swap) -- leaving it is harmless and the next pass removes it.

Invariants (asserted in tests): for every key, reading the log gives the same latest value as
before cleaning unless that value is a tombstone past ``delete.retention.ms``; offsets strictly
increase; groups are swapped in ascending order, so at every crash point an older value of a key
is never exposed without the newer record that superseded it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, cast

from seriatim import limits
from seriatim.clock import Clock
from seriatim.errors import CorruptLogError
from seriatim.records import Compression, Record, TimestampType, build_batch, iter_records
from seriatim.records.rawscan import frame_batch, records_payload, reframe_runs, scan_keys
from seriatim.storage.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from seriatim.storage.config import LONG_MAX, LogConfig
from seriatim.storage.fileops import FileOps, pread_exact, write_all
from seriatim.storage.segment import (
    HEADER,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    MAX_RELATIVE_OFFSET,
    TIMEINDEX_SUFFIX,
    BatchInfo,
    Scan,
    Segment,
    parse_segment_name,
    segment_name,
)
from seriatim.storage.txnindex import AbortedTxn

if TYPE_CHECKING:
    from seriatim.storage.log import PartitionLog

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
DIGEST_BYTES = 16
BYTES_PER_ENTRY = DIGEST_BYTES + 8  # Kafka's SkimpyOffsetMap: hash + offset

_ATTR_COMPRESSION_MASK = 0x07
_ATTR_LOG_APPEND_TIME = 0x08
_ATTR_TRANSACTIONAL = 0x10
_ATTR_CONTROL = 0x20

#: ``fault(step)`` is called after each step of the swap ("cleaned-written", "swap-committed",
#: "old-renamed-<i>", "swap-installed", "indexes-written", "deleted-removed"); tests raise to
#: simulate a crash there.
FaultHook = Callable[[str], None]

log = logging.getLogger("seriatim.storage.cleaner")


class CleaningAborted(Exception):
    """The pass was abandoned (the log closed, or its segments changed under it)."""


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Broker-wide cleaner settings (Kafka's ``log.cleaner.*``)."""

    dedupe_buffer_bytes: int = limits.LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT
    io_max_bytes_per_second: float = math.inf
    load_factor: float = limits.LOG_CLEANER_IO_BUFFER_LOAD_FACTOR

    def __post_init__(self) -> None:
        if self.dedupe_buffer_bytes < BYTES_PER_ENTRY:
            raise ValueError(f"dedupe_buffer_bytes must be >= {BYTES_PER_ENTRY}")
        if not self.io_max_bytes_per_second > 0:
            raise ValueError("io_max_bytes_per_second must be > 0")
        if not 0.0 < self.load_factor <= 1.0:
            raise ValueError("load_factor must be in (0, 1]")

    @property
    def map_capacity(self) -> int:
        """Entries the offset map may hold."""
        return max(1, int(self.dedupe_buffer_bytes // BYTES_PER_ENTRY * self.load_factor))


@dataclass(slots=True)
class CleanStats:
    """What one :meth:`Cleaner.clean` call did; ``reason`` says why it stopped or skipped."""

    reason: str = ""
    passes: int = 0
    groups_swapped: int = 0
    segments_in: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    map_entries_max: int = 0
    first_dirty_offset: int = -1
    oldest_tombstone_ms: int = LONG_MAX  # of the tombstones the last pass kept

    @property
    def cleaned(self) -> bool:
        return self.passes > 0

    def add(self, other: CleanStats) -> None:
        for name in ("passes", "groups_swapped", "segments_in", "bytes_read", "bytes_written",
                     "records_read", "records_removed", "tombstones_removed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.map_entries_max = max(self.map_entries_max, other.map_entries_max)


_blake2b = hashlib.blake2b


def _digest(key: bytes) -> bytes:
    # A key shorter than a digest is its own digest: no hash call (~350 ns, a fifth of the
    # cleaner's time with 12-byte keys), less memory, and no collision with a 16-byte digest.
    return key if len(key) < DIGEST_BYTES else _blake2b(key, digest_size=DIGEST_BYTES).digest()


class OffsetMap:
    """``digest(key) -> position``, bounded to ``capacity`` entries.

    The cleaner stores as the position the **base offset of the batch** holding the key's
    latest record (see :func:`_filter_batch`): every entry of a batch then shares one int
    object, which saves ~30 B an entry (measured: 139 -> 108 B an entry with 16-byte digests),
    and a batch is mapped with one ``dict.update``. :meth:`put` / :meth:`get` take any int.
    """

    __slots__ = ("_live", "_live_cap", "_map", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an offset map needs room for at least one key")
        self.capacity = capacity
        self._map: dict[bytes | None, int] = {}
        # Per tracked batch (by base offset): how many keys have their latest record in it.
        # Bounded (a log of 1-record batches would need one entry a record); an untracked
        # batch is simply walked again by the clean step.
        self._live: dict[int, int] = {}
        self._live_cap = max(1, capacity // 4)

    @staticmethod
    def digest(key: bytes) -> bytes:
        return _digest(key)

    @staticmethod
    def digests(keys: list[bytes | None], any_null: bool) -> list[bytes | None]:
        """The digests of ``keys`` (None stays None); ``keys`` itself when all are short."""
        if not any_null and max(map(len, cast("list[bytes]", keys))) < DIGEST_BYTES:
            return keys
        return [k if k is None or len(k) < DIGEST_BYTES
                else _blake2b(k, digest_size=DIGEST_BYTES).digest() for k in keys]

    def room_for(self, n: int) -> bool:
        """True if ``n`` new keys fit (an empty map takes any one batch: progress)."""
        return not self._map or len(self._map) + n <= self.capacity

    def put(self, key: bytes, offset: int) -> None:
        self._map[_digest(key)] = offset

    def get(self, key: bytes) -> int:
        """The latest mapped position of ``key``; -1 if absent."""
        return self._map.get(_digest(key), -1)

    def map_batch(self, digests: list[bytes], base: int, *, track: bool) -> None:
        """Map a batch's key digests (all of its records) to its ``base`` offset and keep the
        live-key counts :meth:`live_keys` reports: the batches whose keys move here lose them,
        and with ``track`` this batch is counted (its distinct keys).

        Why: after mapping, a tracked batch with 0 live keys is wholly superseded and one with
        as many live keys as records is wholly kept, so the clean step decides both without
        reading or walking them (on a log of many updates, most of the data). The extra cost
        here is C-level list/dict work (~0.1 us a record against ~0.5 us for a walk).
        """
        m = self._map
        live = self._live
        distinct = list(dict.fromkeys(digests))
        if live:
            for old, n in Counter(map(m.get, distinct)).items():
                if old is not None and old in live:
                    live[old] -= n
        m.update(zip(distinct, repeat(base)))
        if track and len(live) < self._live_cap:
            live[base] = len(distinct)

    def live_keys(self, base: int) -> int | None:
        """Keys whose latest record is in the tracked batch at ``base`` (None: not tracked)."""
        return self._live.get(base)

    def lookup(self, digests: list[bytes | None]) -> list[int]:
        """The mapped position of each digest; -1 if absent (always for None)."""
        return list(map(self._map.get, digests, repeat(-1)))

    def __len__(self) -> int:
        return len(self._map)


class Throttler:
    """Caps the cleaner's I/O at ``rate`` bytes/s by sleeping (Kafka's Throttler)."""

    def __init__(self, rate: float, clock: Clock,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._window_start_ns = clock.monotonic_ns()
        self._window_bytes = 0
        self.slept_s = 0.0

    def charge(self, n_bytes: int) -> None:
        if math.isinf(self.rate):
            return
        self._window_bytes += n_bytes
        now = self._clock.monotonic_ns()
        elapsed_s = (now - self._window_start_ns) / 1e9
        owed_s = self._window_bytes / self.rate - elapsed_s
        if owed_s > 0:
            self._sleep(owed_s)
            self.slept_s += owed_s
        if elapsed_s >= 1.0:  # a fresh window: no credit for idle time long ago
            self._window_start_ns = self._clock.monotonic_ns()
            self._window_bytes = 0


# --- the cleaner checkpoint -------------------------------------------------------------------


def read_first_dirty(directory: str) -> int | None:
    """The cleaner checkpoint: where the dirty section starts (None: never cleaned)."""
    try:
        entries = read_checkpoint(os.path.join(directory, CLEANER_CHECKPOINT_FILE), 1)
    except CheckpointError as exc:
        log.warning("%s: %s; treating the whole log as dirty", directory, exc)
        return None
    return entries[0][0] if entries else None


def write_first_dirty(directory: str, offset: int, fs: FileOps) -> None:
    write_checkpoint(os.path.join(directory, CLEANER_CHECKPOINT_FILE), [(offset,)], fs)


# --- recovery: resolving an interrupted swap ---------------------------------------------------


def recover_cleaner_files(directory: str, fs: FileOps) -> list[str]:
    """Resolve ``.cleaned`` / ``.swap`` / ``.deleted`` leftovers (see the module docstring).

    Called by the writer's open before segments are listed. Returns notes for the recovery
    report. Raises CorruptLogError if a ``.swap`` file is damaged: it was fsynced before its
    rename, so damage there is not a torn write, and completing the swap would drop data.
    """
    names = sorted(os.listdir(directory))
    notes: list[str] = []
    changed = False
    for name in names:
        if name.endswith((CLEANED_SUFFIX, DELETED_SUFFIX)):
            os.unlink(os.path.join(directory, name))
            notes.append(f"removed {name} (interrupted cleaning)")
            changed = True
    for name in names:
        if not name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            continue
        base = parse_segment_name(name[: -len(SWAP_SUFFIX)])
        if base is None:
            continue
        swap_path = os.path.join(directory, name)
        limit = max(_next_offset_of(swap_path, base), base + 1)
        for other in sorted(os.listdir(directory)):
            other_base = parse_segment_name(other)
            if other_base is not None and base <= other_base < limit:
                _unlink_segment_files(directory, other_base)
                notes.append(f"removed {other}, replaced by {name}")
        _unlink_segment_files(directory, base)  # the replaced segment's stale indexes
        fs.replace(swap_path, os.path.join(directory, segment_name(base) + LOG_SUFFIX))
        notes.append(f"completed the swap of {name}")
        changed = True
    if changed:
        fs.fsync_dir(directory)
        for note in notes:
            log.info("%s: %s", directory, note)
    return notes


def _next_offset_of(path: str, base: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        scan = Scan(fd, 0, size, verify_crc=True, min_offset=base)
        nxt = base
        for b in scan:
            nxt = b.last_offset + 1
        if scan.stop_reason is not None:
            raise CorruptLogError(path, scan.stop_position,
                                  f"damaged swap file ({scan.stop_reason}); refusing to complete "
                                  "the interrupted compaction")
        return nxt
    finally:
        os.close(fd)


def _unlink_segment_files(directory: str, base: int) -> None:
    stem = os.path.join(directory, segment_name(base))
    for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX):
        try:
            os.unlink(stem + suffix)
        except FileNotFoundError:
            pass


# --- swap steps (called by PartitionLog under its locks) ---------------------------------------


def cleaned_path(directory: str, base: int) -> str:
    return os.path.join(directory, segment_name(base) + LOG_SUFFIX + CLEANED_SUFFIX)


def swap_in(directory: str, old: list[Segment], new: Segment, fs: FileOps,
            fault: FaultHook | None) -> None:
    """Steps 2-5 of the swap protocol. Any OSError is the caller's to turn into fail-stop."""
    hook = fault or _no_fault
    base = new.base_offset
    swap = os.path.join(directory, segment_name(base) + LOG_SUFFIX + SWAP_SUFFIX)
    fs.replace(cleaned_path(directory, base), swap)
    fs.fsync_dir(directory)
    hook("swap-committed")
    doomed: list[str] = []
    for i, seg in enumerate(old):
        for path in (seg.log_path, seg.index.path, seg.time_index.path):
            if os.path.exists(path):
                fs.replace(path, path + DELETED_SUFFIX)
                doomed.append(path + DELETED_SUFFIX)
        hook(f"old-renamed-{i}")
    fs.replace(swap, new.log_path)
    fs.fsync_dir(directory)
    hook("swap-installed")
    new.persist_indexes(fs, sync=True, rewrite=True)
    hook("indexes-written")
    for path in doomed:
        os.unlink(path)  # open descriptors keep the data readable for in-flight readers
    fs.fsync_dir(directory)
    hook("deleted-removed")


def _no_fault(step: str) -> None:
    return None


# --- the cleaner ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    """A segment being cleaned: the live object (for the swap check) and a private fd."""

    seg: Segment
    fd: int
    size: int
    base_offset: int
    next_offset: int
    index_entries: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class _Plan:
    first_dirty: int
    stop: int  # first uncleanable offset: the base of the first segment not cleanable
    cleanable: int  # how many segments from the first are cleanable
    dirty_ratio: float


class Cleaner:
    """Cleans one log at a time; holds no state between calls except its config."""

    def __init__(self, config: CleanerConfig | None = None, *, clock: Clock | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config or CleanerConfig()
        self._clock = clock
        self._sleep = sleep

    def clean(self, plog: PartitionLog, now_ms: int | None = None, *, force: bool = False,
              fault: FaultHook | None = None) -> CleanStats:
        """Compact ``plog`` if it is due (always, with ``force``); see the module docstring."""
        stats = CleanStats()
        cfg = plog.config
        if plog.readonly or not cfg.compact:
            stats.reason = "cleanup.policy does not include compact"
            return stats
        clock = self._clock or plog.clock
        now = clock.wall_ms() if now_ms is None else now_ms
        throttler = Throttler(self.config.io_max_bytes_per_second, clock, self._sleep)
        try:
            with plog.cleaning():
                while True:
                    plan = self._plan(plog, cfg, now, force=force, first=not stats.passes)
                    if isinstance(plan, str):
                        if not stats.passes:
                            stats.reason = plan
                        break
                    done = self._pass(plog, cfg, plan, now, throttler, stats, fault)
                    stats.passes += 1
                    stats.first_dirty_offset = done
                    stats.reason = "cleaned"
        except CleaningAborted as exc:
            stats.reason = f"aborted: {exc}"
        else:
            if stats.passes:
                plog.tombstones_expire_ms = (
                    LONG_MAX if stats.oldest_tombstone_ms == LONG_MAX
                    else stats.oldest_tombstone_ms + cfg.delete_retention_ms)
        if stats.passes:
            log.info("%s: cleaned in %d pass(es): %d group(s), %d -> %d bytes, %d record(s) "
                     "removed (%d tombstone(s))", plog.path, stats.passes, stats.groups_swapped,
                     stats.bytes_read, stats.bytes_written, stats.records_removed,
                     stats.tombstones_removed)
        return stats

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, plog: PartitionLog, cfg: LogConfig, now_ms: int, *, force: bool,
              first: bool) -> _Plan | str:
        """What the next pass cleans, or why there is none. After the first pass of a clean,
        passes continue while anything is dirty, whatever the ratio."""
        segs, log_start = plog.cleaner_view()
        active_base = segs[-1].base_offset
        first_dirty = read_first_dirty(plog.path)
        first_dirty = min(max(first_dirty or 0, log_start, segs[0].base_offset), active_base)
        # Transactions: never clean at or past the first unstable offset (an open
        # transaction's records may still commit or abort), as Kafka's cleaner does.
        unstable = plog.first_unstable_offset()
        cleanable = 0
        for seg in segs[:-1]:
            if cfg.min_compaction_lag_ms > 0 and seg.max_timestamp > \
                    now_ms - cfg.min_compaction_lag_ms:
                break
            if unstable is not None and seg.next_offset > unstable:
                break
            cleanable += 1
        if not cleanable:
            return ("no segment is cleanable yet (active, within min.compaction.lag.ms, or "
                    "holding an open transaction)")
        stop = segs[cleanable].base_offset
        if first_dirty >= stop:
            # Nothing dirty. A pass over the clean section still removes tombstones whose
            # delete.retention.ms has passed (and merges small segments): when asked to, or
            # when the oldest tombstone the last pass kept is due (unknown after a restart).
            if first and (force or now_ms >= plog.tombstones_expire_ms):
                return _Plan(first_dirty, first_dirty, cleanable, 0.0)
            return "nothing dirty"
        dirty_segs = [s for s in segs[:cleanable] if s.next_offset > first_dirty]
        dirty = sum(s.size for s in dirty_segs)
        total = sum(s.size for s in segs[:cleanable])
        ratio = dirty / total if total else 0.0
        if first and not force and ratio < cfg.min_cleanable_dirty_ratio:
            oldest = dirty_segs[0].rolling_timestamp if dirty_segs else None
            overdue = (cfg.max_compaction_lag_ms < LONG_MAX and oldest is not None
                       and oldest >= 0 and now_ms - oldest > cfg.max_compaction_lag_ms)
            if not overdue:
                return (f"dirty ratio {ratio:.3f} is below min.cleanable.dirty.ratio "
                        f"{cfg.min_cleanable_dirty_ratio}")
        return _Plan(first_dirty, stop, cleanable, ratio)

    # --- one pass -------------------------------------------------------------------------------

    def _pass(self, plog: PartitionLog, cfg: LogConfig, plan: _Plan, now_ms: int,
              throttler: Throttler, stats: CleanStats, fault: FaultHook | None) -> int:
        sources = plog.open_for_cleaning(plan.cleanable)
        stats.oldest_tombstone_ms = LONG_MAX
        try:
            omap = OffsetMap(self.config.map_capacity)
            aborted = AbortedBatches(plog.aborted_transactions(0, plan.stop))
            end, full = _build_map(sources, plan.first_dirty, plan.stop, omap, throttler,
                                   plog, stats, aborted)
            stats.map_entries_max = max(stats.map_entries_max, len(omap))
            todo = [s for s in sources if s.base_offset < end]
            horizon_ms = now_ms - cfg.delete_retention_ms
            for group in group_segments(todo, cfg.segment_bytes, cfg.segment_index_bytes):
                new, changed = _clean_group(plog, group, omap, end, horizon_ms, cfg,
                                            throttler, stats, aborted)
                if not changed:
                    new.close()
                    os.unlink(cleaned_path(plog.path, new.base_offset))
                    continue
                if fault is not None:
                    fault("cleaned-written")
                if not plog.replace_segments([s.seg for s in group], [s.size for s in group],
                                             new, fault):
                    new.close()
                    _unlink_quietly(cleaned_path(plog.path, new.base_offset))
                    raise CleaningAborted("the log changed under the cleaner")
                stats.groups_swapped += 1
                stats.segments_in += len(group)
            done = end if full else plan.stop
            write_first_dirty(plog.path, done, plog.fs)
            return done
        finally:
            for s in sources:
                os.close(s.fd)


def group_segments(sources: list[_Source], max_bytes: int,
                   max_index_bytes: int) -> list[list[_Source]]:
    """Consecutive runs whose total size fits ``max_bytes`` (Kafka's groupSegmentsBySize)."""
    groups: list[list[_Source]] = []
    i = 0
    while i < len(sources):
        group = [sources[i]]
        size, entries = sources[i].size, sources[i].index_entries
        i += 1
        while i < len(sources):
            nxt = sources[i]
            if size + nxt.size > max_bytes \
                    or (entries + nxt.index_entries) * 8 > max_index_bytes \
                    or nxt.next_offset - 1 - group[0].base_offset > MAX_RELATIVE_OFFSET:
                break
            group.append(nxt)
            size += nxt.size
            entries += nxt.index_entries
            i += 1
        groups.append(group)
    return groups


def _batches(src: _Source, plog: PartitionLog, throttler: Throttler,
             skip: Callable[[BatchInfo], bool] | None = None
             ) -> Iterator[tuple[BatchInfo, bytes | None]]:
    """The batches of ``src``; a batch ``skip`` selects is not read (``None``)."""
    scan = Scan(src.fd, 0, src.size, verify_crc=False, min_offset=src.base_offset)
    for info in scan:
        plog.check_cleaning_allowed()
        if skip is not None and skip(info):
            yield info, None
            continue
        throttler.charge(info.size)
        yield info, pread_exact(src.fd, info.size, info.position)
    if scan.stop_reason is not None:
        raise CorruptLogError(src.seg.log_path, scan.stop_position, scan.stop_reason)


class AbortedBatches:
    """Which transactional batches belong to aborted transactions (from the .txnindex).

    An aborted batch is invisible to read_committed readers, so it must neither supersede an
    earlier committed value for its keys (it is not mapped) nor survive cleaning (it is
    dropped), as in Kafka's cleaner. Markers (control batches) are kept.
    """

    def __init__(self, aborted: list[AbortedTxn]) -> None:
        self._ranges: dict[int, list[tuple[int, int]]] = {}
        for txn in aborted:
            self._ranges.setdefault(txn.producer_id, []).append(
                (txn.first_offset, txn.last_offset))

    def __contains__(self, info: BatchInfo) -> bool:
        if not info.attributes & _ATTR_TRANSACTIONAL or info.attributes & _ATTR_CONTROL:
            return False
        ranges = self._ranges.get(info.producer_id)
        return ranges is not None and any(
            first <= info.base_offset <= last for first, last in ranges)


def _build_map(sources: list[_Source], first_dirty: int, stop: int, omap: OffsetMap,
               throttler: Throttler, plog: PartitionLog, stats: CleanStats,
               aborted: AbortedBatches) -> tuple[int, bool]:
    """Map the dirty section; returns (end of the mapped range, whether the map filled)."""
    end = first_dirty
    for src in sources:
        if src.next_offset <= first_dirty:
            continue
        if src.base_offset >= stop:
            break
        for info, batch in _batches(src, plog, throttler):
            stats.bytes_read += info.size
            if info.last_offset < first_dirty:
                continue
            if not omap.room_for(info.record_count):
                return end, True
            if not info.attributes & _ATTR_CONTROL and info not in aborted:
                assert batch is not None  # markers carry no key; aborted data counts for none
                _map_batch(batch, info, first_dirty, omap)
            end = info.last_offset + 1
        end = max(end, src.next_offset)
    return end, False


def _map_batch(batch: bytes, info: BatchInfo, first_dirty: int, omap: OffsetMap) -> None:
    """Map the keys of ``batch``'s records at or above ``first_dirty`` to its base offset."""
    base = info.base_offset
    data, start, stop = records_payload(batch)
    scan = scan_keys(data, start, stop, info.record_count)
    if scan is None:  # unusual (offset deltas not 0..n-1) or malformed: the full decoder
        for rec in iter_records(batch):  # raises CorruptRecordError if malformed
            if rec.key is not None and rec.offset >= first_dirty:
                omap.put(rec.key, base)
        return
    keys, nulls, tombs = scan[0], scan[1], scan[2]
    if base >= first_dirty and not nulls:
        # Tracked only when every record is mapped and none needs a per-record rule
        # (tombstone expiry).
        omap.map_batch(cast("list[bytes]", omap.digests(keys, False)), base, track=not tombs)
        return
    if base < first_dirty:  # the dirty section (or the log) starts inside this batch
        keys = keys[first_dirty - base:]
    if nulls:
        keys = [k for k in keys if k is not None]
    if keys:
        omap.map_batch(cast("list[bytes]", omap.digests(keys, False)), base, track=False)


def _clean_group(plog: PartitionLog, group: list[_Source], omap: OffsetMap, end: int,
                 horizon_ms: int, cfg: LogConfig, throttler: Throttler,
                 stats: CleanStats, aborted: AbortedBatches) -> tuple[Segment, bool]:
    """Write the group's kept batches to ``<base>.log.cleaned``; returns the new segment (fd
    open, state and indexes in memory) and whether it differs from the group."""
    directory = plog.path
    base = group[0].base_offset
    path = cleaned_path(directory, base)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    new = Segment(directory, base, fd, 0)
    changed = len(group) > 1
    out = bytearray()
    position = 0  # bytes emitted so far (written or buffered in ``out``)
    def superseded(info: BatchInfo) -> bool:  # see OffsetMap.map_batch
        return omap.live_keys(info.base_offset) == 0

    try:
        for src in group:
            for info, batch in _batches(src, plog, throttler, superseded):
                stats.bytes_read += info.size
                if batch is None or info in aborted:  # superseded (not even read) or aborted
                    stats.records_read += info.record_count
                    stats.records_removed += info.record_count
                    changed = True
                    continue
                kept = _filter_batch(batch, info, omap, end, horizon_ms, stats)
                if kept is None:
                    kept = [batch]
                else:
                    changed = True
                for piece in kept:
                    h = HEADER.unpack_from(piece)  # baseOffset [0], lastOffsetDelta [6], maxTs [8]
                    new.on_append(position, len(piece), h[0] + h[6], h[8],
                                  cfg.index_interval_bytes)
                    position += len(piece)
                    out += piece
                if len(out) >= limits.LOG_CLEANER_WRITE_BUFFER_BYTES:
                    _flush_out(plog, fd, out, throttler, stats)
        _flush_out(plog, fd, out, throttler, stats)
        invariant_size = os.fstat(fd).st_size
        if invariant_size != position or new.size != position:
            raise CorruptLogError(path, invariant_size,
                                  f"cleaned segment holds {invariant_size} bytes, "
                                  f"{position} were written")
        plog.fs.fdatasync(fd)
        new.seal_time_index()
        new.rolling_timestamp = new._first_batch_max_timestamp()
        new.created_ms = plog.clock.wall_ms()
        mtime = max(s.mtime_ns for s in group)
        os.utime(fd, ns=(mtime, mtime))
    except BaseException:
        new.close()
        _unlink_quietly(path)
        raise
    return new, changed


def _flush_out(plog: PartitionLog, fd: int, out: bytearray, throttler: Throttler,
               stats: CleanStats) -> None:
    if out:
        throttler.charge(len(out))
        write_all(plog.fs, fd, out)
        stats.bytes_written += len(out)
        out.clear()


def _filter_batch(batch: bytes, info: BatchInfo, omap: OffsetMap, end: int, horizon_ms: int,
                  stats: CleanStats) -> list[bytes] | None:
    """The batches that replace ``batch`` (None: keep it as it is; []: drop it).

    The map holds, per key, the base offset ``M`` of the batch with the key's latest record.
    A record of this batch (base ``b``) is superseded when ``M > b`` (the latest is in a later
    batch) or when ``M == b`` and the key occurs again later in this batch (mapping keeps the
    last occurrence of a batch, so that later one is the latest). ``M < b`` happens only for an
    absent key (-1): records below ``end`` are either mapped or older than every mapped one.

    Measured hot path: the keys come from :func:`scan_keys` (no Record objects), the decisions
    are made per batch with C-level list operations where possible, and kept records of a
    partly kept batch are re-framed from their raw bytes (:func:`reframe_runs`), not
    re-encoded; the general decoder remains for unusual or malformed batches.
    """
    if info.attributes & _ATTR_CONTROL or info.base_offset >= end:
        return None  # transaction markers are kept (Kafka removes them later; we do not yet)
    base = info.base_offset
    n = info.record_count
    if omap.live_keys(base) == n:  # mapped this pass: every record is its key's latest
        stats.records_read += n
        return None
    data, start, stop = records_payload(batch)  # validates: CRC, codec, counts
    scan = scan_keys(data, start, stop, n) if info.last_offset < end else None
    if scan is None:
        return _filter_decoded(batch, info, omap, end, horizon_ms, stats)
    keys, nulls, tombs, tomb_ts = scan
    stats.records_read += n
    digests = omap.digests(keys, bool(nulls))
    mapped = omap.lookup(digests)
    if min(mapped) > base:  # every record superseded by a later batch
        stats.records_removed += n
        return []
    unique = len(set(digests)) == n
    if not nulls and not tombs and max(mapped) <= base and unique:
        return None  # nothing superseded: the batch stays byte for byte
    keep = list(map(base.__ge__, mapped))
    if not unique and base in mapped:
        last = dict(zip(digests, range(n), strict=True))  # last occurrence in the batch
        for i, m in enumerate(mapped):
            if m == base and last[digests[i]] != i:
                keep[i] = False
    for i in nulls:
        keep[i] = False  # no key: cannot be compacted, so it is dropped (as Kafka does)
    append_time = info.max_timestamp if info.attributes & _ATTR_LOG_APPEND_TIME else None
    for i, ts_delta in zip(tombs, tomb_ts, strict=True):
        if keep[i]:
            ts = info.first_timestamp + ts_delta if append_time is None else append_time
            if ts < horizon_ms:
                keep[i] = False
                stats.tombstones_removed += 1
            elif ts < stats.oldest_tombstone_ms:
                stats.oldest_tombstone_ms = ts
    kept = keep.count(True)
    stats.records_removed += n - kept
    if kept == n:
        return None
    if not kept:
        return []
    attrs = info.attributes & (_ATTR_COMPRESSION_MASK | _ATTR_LOG_APPEND_TIME
                               | _ATTR_TRANSACTIONAL)
    out = []
    for first, count, first_ts, max_ts, records in reframe_runs(
            data, start, stop, n, keep, info.first_timestamp, append_time):
        seq = info.base_sequence
        if seq >= 0:
            seq = (seq + first) % (2**31)
        out.append(frame_batch(records, count=count, base_offset=base + first,
                               attributes=attrs, first_timestamp=first_ts,
                               max_timestamp=max_ts, producer_id=info.producer_id,
                               producer_epoch=info.producer_epoch, base_sequence=seq,
                               partition_leader_epoch=info.leader_epoch))
    return out


def _filter_decoded(batch: bytes, info: BatchInfo, omap: OffsetMap, end: int, horizon_ms: int,
                    stats: CleanStats) -> list[bytes] | None:
    """:func:`_filter_batch` through the full decoder: for batches whose offset deltas are not
    0..n-1 or that straddle ``end``, and to raise the precise error for a malformed one."""
    base = info.base_offset
    records = list(iter_records(batch))
    stats.records_read += len(records)
    digests = [None if r.key is None else _digest(r.key) for r in records]
    last = dict(zip(digests, range(len(records)), strict=True))
    kept: list[Record] = []
    for i, rec in enumerate(records):
        if rec.offset >= end:
            kept.append(rec)
            continue
        mapped = omap.lookup([digests[i]])[0]
        if rec.key is None or mapped > base or (mapped == base and last[digests[i]] != i):
            continue  # no key (cannot be compacted), or superseded
        if rec.value is None and rec.timestamp_ms < horizon_ms:
            stats.tombstones_removed += 1
        else:
            if rec.value is None and rec.timestamp_ms < stats.oldest_tombstone_ms:
                stats.oldest_tombstone_ms = rec.timestamp_ms
            kept.append(rec)
    stats.records_removed += len(records) - len(kept)
    if len(kept) == len(records):
        return None
    return [_encode_run(run, info) for run in _runs(kept)]


def _runs(records: list[Record]) -> Iterator[list[Record]]:
    """Maximal runs of consecutive offsets."""
    run: list[Record] = []
    for rec in records:
        if run and rec.offset != run[-1].offset + 1:
            yield run
            run = []
        run.append(rec)
    if run:
        yield run


def _encode_run(run: list[Record], info: BatchInfo) -> bytes:
    attrs = info.attributes
    append_time = bool(attrs & _ATTR_LOG_APPEND_TIME)
    first = run[0].offset
    seq = info.base_sequence
    if seq >= 0:
        seq = (seq + first - info.base_offset) % (2**31)
    return build_batch(
        [(r.key, r.value, r.headers, r.timestamp_ms) for r in run],
        base_offset=first,
        compression=Compression(attrs & _ATTR_COMPRESSION_MASK),
        timestamp_ms=info.max_timestamp if append_time else run[0].timestamp_ms,
        producer_id=info.producer_id,
        producer_epoch=info.producer_epoch,
        base_sequence=seq,
        partition_leader_epoch=info.leader_epoch,
        timestamp_type=TimestampType.LOG_APPEND_TIME if append_time
        else TimestampType.CREATE_TIME,
        transactional=bool(attrs & _ATTR_TRANSACTIONAL),
    )


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def source_of(seg: Segment) -> _Source:
    """Snapshot ``seg`` for cleaning with its own descriptor (call under the log's lock)."""
    fd = os.dup(seg.fd)
    return _Source(seg, fd, seg.size, seg.base_offset, seg.next_offset, len(seg.index),
                   os.fstat(fd).st_mtime_ns)

