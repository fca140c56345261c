"""The cleaner's lean paths against the general ones.

* ``scan_keys`` finds the keys, keyless records and tombstones ``iter_records`` decodes, and
  refuses (None) what it does not handle; ``reframe_runs`` + ``frame_batch`` produce the very
  bytes ``build_batch`` encodes for the kept records.
* A whole compaction (keys short and long, keyless records, tombstones, duplicate keys in a
  batch, headers, codecs, LogAppendTime, a log start inside a batch) keeps exactly the records
  Kafka's rules keep, with their offsets, timestamps, keys, values and headers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seriatim.records import Compression, TimestampType, build_batch, iter_records
from seriatim.records.rawscan import frame_batch, records_payload, reframe_runs, scan_keys
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.cleaner import Cleaner, CleanerConfig

KEYS = [None, b"", b"a", b"b", b"k" * 15, b"k" * 16, b"long-key-" * 4, b"long-key-" * 5]
CODECS = [Compression.NONE, Compression.NONE, Compression.GZIP, Compression.ZSTD]

records_st = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.one_of(st.none(), st.binary(max_size=300)),
        st.lists(st.tuples(st.sampled_from(["h", "trace"]),
                           st.one_of(st.none(), st.binary(max_size=4))), max_size=2),
        st.integers(-100, 10_000),
    ),
    min_size=1, max_size=150)


@settings(max_examples=150, deadline=None)
@given(records=records_st, codec=st.sampled_from(CODECS), append_time=st.booleans(),
       keep_bits=st.lists(st.booleans(), min_size=150, max_size=150))
def test_scan_and_reframe_match_the_general_codec(records: list, codec: Compression,
                                                  append_time: bool,
                                                  keep_bits: list[bool]) -> None:
    ts_type = TimestampType.LOG_APPEND_TIME if append_time else TimestampType.CREATE_TIME
    batch = build_batch(records, base_offset=1_000, compression=codec, timestamp_ms=5_000,
                        timestamp_type=ts_type, producer_id=7, producer_epoch=1,
                        base_sequence=10, partition_leader_epoch=3)
    decoded = list(iter_records(batch))
    data, start, end = records_payload(batch)
    scan = scan_keys(data, start, end, len(decoded))
    assert scan is not None
    keys, nulls, tombs, tomb_ts = scan
    assert keys == [r.key for r in decoded]
    assert nulls == [i for i, r in enumerate(decoded) if r.key is None]
    assert tombs == [i for i, r in enumerate(decoded) if r.value is None]
    first_ts = int.from_bytes(batch[27:35], "big", signed=True)
    max_ts = int.from_bytes(batch[35:43], "big", signed=True)
    if not append_time:
        assert [first_ts + d for d in tomb_ts] == [decoded[i].timestamp_ms for i in tombs]

    keep = keep_bits[: len(decoded)]
    runs = reframe_runs(data, start, end, len(decoded), keep, first_ts,
                        max_ts if append_time else None)
    assert [i for first, count, *_ in runs for i in range(first, first + count)] == \
        [i for i, k in enumerate(keep) if k]
    attrs = batch[21] << 8 | batch[22]
    for first, count, run_first_ts, run_max_ts, payload in runs:
        run = decoded[first : first + count]
        expected = build_batch(
            [(r.key, r.value, r.headers, r.timestamp_ms) for r in run],
            base_offset=run[0].offset, compression=codec,
            timestamp_ms=max_ts if append_time else run[0].timestamp_ms,
            producer_id=7, producer_epoch=1, base_sequence=10 + first,
            partition_leader_epoch=3, timestamp_type=ts_type)
        got = frame_batch(payload, count=count, base_offset=run[0].offset, attributes=attrs,
                          first_timestamp=run_first_ts, max_timestamp=run_max_ts,
                          producer_id=7, producer_epoch=1, base_sequence=10 + first,
                          partition_leader_epoch=3)
        if codec == Compression.NONE:
            assert got == expected
        assert list(iter_records(got)) == list(iter_records(expected))


def test_scan_keys_refuses_what_it_does_not_handle() -> None:
    batch = bytearray(build_batch([(b"k", b"v"), (b"k2", b"v2")], timestamp_ms=1))
    data, start, end = records_payload(bytes(batch))
    assert scan_keys(data, start, end, 2) is not None
    assert scan_keys(data, start, end, 3) is None  # fewer records than declared
    assert scan_keys(data, start, end - 1, 2) is None  # truncated
    assert scan_keys(data + b"\x00", start, end + 1, 2) is None  # bytes left over
    # offset delta 1 for the first record: legal-looking but not 0..n-1
    raw = bytearray(data)
    raw[start + 3] = 2  # zigzag(1)
    assert scan_keys(bytes(raw), start, end, 2) is None


batches_st = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=40)),
                           st.integers(0, 3)), min_size=1, max_size=12),
        st.sampled_from(CODECS), st.booleans(), st.booleans()),
    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_st, capacity=st.sampled_from([1, 7, 1 << 20]),
       start_cut=st.integers(0, 5), now_ms=st.sampled_from([10_000, 10_000 + 1_500]))
def test_compaction_keeps_exactly_what_kafka_keeps(batches: list, capacity: int,
                                                    start_cut: int, now_ms: int) -> None:
    retention_ms = 1_000
    cfg = LogConfig(cleanup_policy="compact", segment_bytes=700, flush_policy="never",
                    delete_retention_ms=retention_ms)
    with tempfile.TemporaryDirectory() as tmp:
        with PartitionLog.open(Path(tmp) / "p", cfg) as log:
            for recs, codec, append_time, roll in batches:
                ts_type = (TimestampType.LOG_APPEND_TIME if append_time
                           else TimestampType.CREATE_TIME)
                log.append_batch(build_batch(
                    [(k, v, [("h", b"%d" % t)] if t else [], 9_000 + t) for k, v, t in recs],
                    compression=codec, timestamp_type=ts_type, timestamp_ms=9_500))
                if roll:
                    log.roll()
            log.roll()
            cut = min(start_cut, log.end_offset - 1)
            if cut:
                log.delete_records_before(cut)  # the log start may fall inside a batch
            before = list(log.read_records())
            stop = log.end_offset  # everything is sealed: the whole log is cleanable
            latest = {r.key: r.offset for r in before if r.key is not None}
            expected = [
                r for r in before
                if r.offset >= stop or (
                    r.key is not None and latest[r.key] == r.offset
                    and not (r.value is None and r.timestamp_ms < now_ms - retention_ms))]
            stats = Cleaner(CleanerConfig(dedupe_buffer_bytes=24 * capacity,
                                          load_factor=1.0)).clean(log, now_ms, force=True)
            assert stats.cleaned
            after = list(log.read_records())
            assert after == expected
        with PartitionLog.open(Path(tmp) / "p", cfg) as log:  # and it recovers as it is
            assert list(log.read_records()) == expected
