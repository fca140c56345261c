"""``records.columns.append_batch`` (the replica's lean decoder) gives exactly what
``iter_records`` gives: the same records, the same filtering as ``PartitionLog.read_records``,
and on malformed bytes the same error (leaving the columns as they were)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seriatim.errors import CorruptRecordError, InvalidRecordError
from seriatim.records import Compression, Record, TimestampType, build_batch, iter_records
from seriatim.records.columns import RecordColumns, append_batch
from seriatim.records.rawscan import frame_batch

T0 = 1_700_000_000_000

# Mostly the shape Log.append_many writes (no key, no headers, one timestamp), then the rest.
values = st.one_of(st.binary(min_size=0, max_size=90), st.none(),
                   st.binary(min_size=8000, max_size=8300))
keys = st.one_of(st.none(), st.none(), st.binary(max_size=70))
headers = st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)),
                   max_size=2)
stamps = st.one_of(st.none(), st.integers(T0 - 10_000, T0 + 10_000))
plain_records = st.lists(st.tuples(st.none(), values), min_size=1, max_size=80)
any_records = st.lists(st.tuples(keys, values, headers, stamps), min_size=1, max_size=40)


def expected(batch: bytes, start: int, stop: int | None) -> list[Record]:
    """PartitionLog.read_records: whole batch if inside the range, else filtered."""
    recs = list(iter_records(batch))
    first, last = recs[0].offset, recs[-1].offset
    if first >= start and (stop is None or last < stop):
        return recs
    out = []
    for r in recs:
        if stop is not None and r.offset >= stop:
            break
        if r.offset >= start:
            out.append(r)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.one_of(plain_records, any_records),
       codec=st.sampled_from(list(Compression)),
       append_time=st.booleans(),
       base=st.integers(0, 2**40),
       cut=st.tuples(st.integers(-2, 90), st.none() | st.integers(-2, 90)),
       prefix=st.integers(0, 3))
def test_columns_equal_iter_records(recs: list[tuple[object, ...]], codec: Compression,
                                    append_time: bool, base: int,
                                    cut: tuple[int, int | None], prefix: int) -> None:
    batch = build_batch(recs, base_offset=base, compression=codec, now_ms=T0,  # type: ignore[arg-type]
                        timestamp_type=(TimestampType.LOG_APPEND_TIME if append_time
                                        else TimestampType.CREATE_TIME))
    start = base + cut[0]
    stop = None if cut[1] is None else base + cut[1]
    # Already-present columns, and bytes before and after the batch in the same buffer.
    cols = RecordColumns([1], [2], [b"x"], {0: b"k"}, {})
    buf = b"\x07" * prefix + batch + b"\x00" * 5
    header = append_batch(cols, buf, prefix, start=start, stop=stop)
    assert header.batch_length + 12 == len(batch)
    want = expected(batch, start, stop)
    assert list(cols)[1:] == want
    assert cols[0] == Record(1, 2, b"k", b"x", ())
    assert cols[1:] == RecordColumns.from_records(want)
    # a memoryview is read the same way
    cols2 = RecordColumns()
    append_batch(cols2, memoryview(buf), prefix, start=start, stop=stop)
    assert list(cols2) == want


def _outcome(fn: object) -> tuple[str, object]:
    try:
        return "ok", fn()  # type: ignore[operator]
    except (CorruptRecordError, InvalidRecordError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.one_of(plain_records, any_records), seed=st.integers(0, 2**32))
def test_malformed_records_fail_as_iter_records_fails(recs: list[tuple[object, ...]],
                                                      seed: int) -> None:
    """Record bytes damaged under a valid CRC (a buggy writer, not a torn disk)."""
    rnd = random.Random(seed)
    good = build_batch(recs, now_ms=T0)  # type: ignore[arg-type]
    payload = bytearray(good[61:])
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(payload))
        op = rnd.randrange(3)
        if op == 0:
            payload[i] = rnd.randrange(256)
        elif op == 1:
            del payload[i]
        else:
            payload.insert(i, rnd.choice([0, 1, 2, 0x7F, 0x80, 0xFF]))
    count = max(1, len(recs) + rnd.choice([0, 0, 0, -1, 1]))
    batch = frame_batch(bytes(payload), count=count, base_offset=10, attributes=0,
                        first_timestamp=T0, max_timestamp=T0, producer_id=-1,
                        producer_epoch=-1, base_sequence=-1, partition_leader_epoch=0)
    cols = RecordColumns([1], [2], [b"x"])

    def lean() -> list[Record]:
        append_batch(cols, batch)
        return list(cols)[1:]

    want = _outcome(lambda: list(iter_records(batch)))
    got = _outcome(lean)
    assert got == want
    if want[0] != "ok":
        assert list(cols) == [Record(1, 2, None, b"x", ())]  # unchanged


def test_columns_are_a_sequence_of_records() -> None:
    batch = build_batch([(None, b"a"), (b"k", b"b", [("h", b"1")], T0 + 5), (None, None)],
                        base_offset=7, now_ms=T0)
    cols = RecordColumns()
    append_batch(cols, batch)
    recs = list(iter_records(batch))
    assert len(cols) == 3 and list(cols) == recs and cols[-1] == recs[-1]
    assert list(reversed(cols)) == recs[::-1] and recs[1] in cols
    assert cols.index(recs[2]) == 2 and cols.count(recs[0]) == 1
    assert list(cols[1:]) == recs[1:] and list(cols[::2]) == recs[::2]
    assert cols.keys == {1: b"k"} and cols.headers == {1: (("h", b"1"),)}
    assert cols[1:].keys == {0: b"k"}
    cols.truncate(1)
    assert list(cols) == recs[:1] and cols.keys == {} and cols.headers == {}
    try:
        cols[5]
    except IndexError:
        pass
    else:
        raise AssertionError("no IndexError")


def test_a_hostile_record_count_is_refused_before_anything_is_sized_by_it() -> None:
    payload = build_batch([(None, b"v")], now_ms=T0)[61:]
    batch = frame_batch(payload, count=2**31 - 1, base_offset=0, attributes=0,
                        first_timestamp=T0, max_timestamp=T0, producer_id=-1,
                        producer_epoch=-1, base_sequence=-1, partition_leader_epoch=0)
    want = _outcome(lambda: list(iter_records(batch)))
    assert want[0] == "CorruptRecordError"
    assert _outcome(lambda: append_batch(RecordColumns(), batch)) == want


def test_a_batch_of_more_records_than_the_walk_takes() -> None:
    batch = build_batch([(None, b"%d" % i) for i in range(70_000)], base_offset=3, now_ms=T0)
    cols = RecordColumns()
    append_batch(cols, batch)
    assert len(cols) == 70_000 and cols.offsets[-1] == 70_002 and cols.values[-1] == b"69999"
    assert cols[12_345] == Record(12_348, T0, None, b"12345", ())
