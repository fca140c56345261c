"""Every bound in one place, with units in the names.

Kafka's own defaults are used where Kafka has the same knob; the config name is in the comment.
"""

from __future__ import annotations

# --- record batches -------------------------------------------------------------------------
RECORD_BATCH_OVERHEAD_BYTES = 61  # DefaultRecordBatch.RECORD_BATCH_OVERHEAD
MAX_MESSAGE_BYTES_DEFAULT = 1_048_588  # max.message.bytes / message.max.bytes
# A decompressed batch may not exceed this many bytes (CVE-2023-34455: decompression bombs).
MAX_DECOMPRESSED_BATCH_BYTES = 64 * 1024 * 1024
# A record's header count, key and value lengths are checked against the bytes that remain;
# this caps the header count of one record regardless.
MAX_RECORD_HEADERS = 100_000

# --- storage --------------------------------------------------------------------------------
SEGMENT_BYTES_DEFAULT = 1_073_741_824  # segment.bytes (1 GiB)
SEGMENT_MS_DEFAULT = 7 * 24 * 3600 * 1000  # segment.ms (7 days)
SEGMENT_INDEX_BYTES_DEFAULT = 10 * 1024 * 1024  # segment.index.bytes
INDEX_INTERVAL_BYTES_DEFAULT = 4096  # index.interval.bytes
RETENTION_MS_DEFAULT = 7 * 24 * 3600 * 1000  # retention.ms
RETENTION_BYTES_DEFAULT = -1  # retention.bytes (unlimited)
FLUSH_INTERVAL_MS_DEFAULT = 1000  # flush.ms used by the 'interval' policy when unset

# --- network --------------------------------------------------------------------------------
SOCKET_REQUEST_MAX_BYTES_DEFAULT = 104_857_600  # socket.request.max.bytes (100 MiB)
FETCH_MAX_BYTES_DEFAULT = 55 * 1024 * 1024  # fetch.max.bytes (broker-side cap)
FETCH_MAX_WAIT_MS_CAP = 30_000  # a long poll never waits longer than this
QUEUED_MAX_REQUESTS_DEFAULT = 500  # queued.max.requests

# --- log compaction (seriatim.storage.cleaner) ------------------------------------------------
DELETE_RETENTION_MS_DEFAULT = 86_400_000  # delete.retention.ms (1 day)
MIN_CLEANABLE_DIRTY_RATIO_DEFAULT = 0.5  # min.cleanable.dirty.ratio
# log.cleaner.dedupe.buffer.size: the offset map's nominal budget at 24 bytes an entry (a 16-byte
# key digest + an 8-byte offset, as Kafka's SkimpyOffsetMap); Python's dict costs ~4.5x that
# (measured <= 108 B an entry with 16-byte digests). 32 MiB holds 1.26 M keys at load factor
# 0.9 -- 1 M keys clean in one pass -- for a peak RSS of ~155 MB at capacity.
LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT = 32 * 1024 * 1024
LOG_CLEANER_IO_BUFFER_LOAD_FACTOR = 0.9  # log.cleaner.io.buffer.load.factor
LOG_CLEANER_BACKOFF_MS_DEFAULT = 15_000  # log.cleaner.backoff.ms
LOG_CLEANER_WRITE_BUFFER_BYTES = 1024 * 1024  # cleaned output is written in chunks this big
LOG_CLEANER_RETIRED_FD_GRACE_MS = 60_000  # replaced segments' fds stay open this long (readers)
