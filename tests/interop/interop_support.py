"""Shared helpers for the interop suite: a message generator, a checker, a raw wire client and
a reader of the broker's partition files.

The interop tests drive a real broker (``seriatim.testing.broker``: real sockets, real files)
with real Kafka clients. Every test follows the same shape:

* :func:`make_messages` builds deterministic keyed messages with headers and explicit
  CreateTime timestamps (monotonic, so ListOffsets by time has one right answer);
* the producer's delivery reports give ``{(partition, offset): Sent}``;
* the consumer's records are normalised to :class:`Got`;
* :func:`check_delivered` and :func:`check_consumed` compare them: every message back exactly
  once, offsets contiguous from 0 per partition, in order, keys/values/headers byte-equal,
  timestamps as sent (CreateTime) or broker time inside the produce window (LogAppendTime).

The checkers report the first mismatch only, so a failure stays readable with 10k records.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seriatim.records import BatchHeader, Record, iter_batches, iter_records
from seriatim.testing.wire import RawConnection

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
ACKS = (1, -1)
PARTITIONS = 3
#: Generous: a slow CI machine must not make a correct broker fail.
DEADLINE_S = 60.0
#: Clients may leave a batch this small uncompressed when compression would not shrink it.
SMALL_BATCH = 5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    log_append_time: bool


def make_messages(tag: str, n: int, first_ts_ms: int, seed: int = 0) -> list[Sent]:
    """``n`` keyed messages; ``tag`` makes the keys unique across calls.

    Values vary in size (0..600 bytes, compressible text with random bytes mixed in), one in
    97 is null (a tombstone), one in 13 is empty. Headers: none on every 10th message;
    otherwise a sequence number, binary bytes, an empty value and a repeated key (order and
    duplicates must survive).
    """
    rng = random.Random(f"{tag}:{seed}")
    out = []
    for i in range(n):
        key = f"{tag}-{i:05d}".encode()
        value: bytes | None
        if i % 97 == 96:
            value = None
        elif i % 13 == 12:
            value = b""
        else:
            size = rng.randrange(0, 600)
            text = (b"seriatim interop %d " % i) * (size // 20 + 1)
            value = text[:size] + rng.randbytes(rng.randrange(0, 8))
        headers: tuple[tuple[str, bytes], ...] = ()
        if i % 10 != 9:
            headers = (
                ("seq", b"%d" % i),
                ("bin", bytes([i % 256, 0, 255, (i * 7) % 256])),
                ("empty", b""),
                ("dup", b"first"),
                ("dup", b"second"),
            )
        out.append(Sent(key, value, headers, first_ts_ms + i))
    return out


# --- checking ------------------------------------------------------------------------------


def _per_partition_offsets(keys: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    by_p: dict[int, list[int]] = defaultdict(list)
    for p, o in keys:
        by_p[p].append(o)
    return by_p


def check_delivered(
    sent: list[Sent], delivered: Mapping[tuple[int, int], Sent], partitions: int = PARTITIONS
) -> None:
    """Every sent message got exactly one (partition, offset); offsets contiguous from 0."""
    assert len(delivered) == len(sent), f"{len(delivered)} delivery reports for {len(sent)} sent"
    assert {s.key for s in delivered.values()} == {s.key for s in sent}
    by_p = _per_partition_offsets(delivered)
    assert set(by_p) <= set(range(partitions)), f"unexpected partitions {sorted(by_p)}"
    assert len(by_p) == partitions, f"keys reached only partitions {sorted(by_p)}"
    for p, offsets in by_p.items():
        offsets.sort()
        assert offsets == list(range(len(offsets))), (
            f"partition {p}: delivered offsets not contiguous from 0: "
            f"{_first_gap(offsets)}"
        )


def _first_gap(offsets: list[int]) -> str:
    for i, o in enumerate(offsets):
        if o != i:
            return f"index {i} has offset {o}"
    return "ok"


def check_consumed(
    delivered: Mapping[tuple[int, int], Sent],
    consumed: list[Got],
    *,
    log_append_window: tuple[int, int] | None = None,
    append_times: Mapping[tuple[int, int], int] | None = None,
) -> None:
    """``consumed`` (in the order the consumer returned them) is exactly ``delivered``.

    CreateTime: each timestamp equals the one sent. LogAppendTime (``log_append_window`` =
    wall-clock ms before the first produce and after the last acknowledgement): the record
    says LogAppendTime and its timestamp lies in the window; ``append_times`` (from the
    produce responses, when the client reports them) must match exactly.
    """
    expected = _per_partition_offsets(delivered)
    got: dict[int, list[Got]] = defaultdict(list)
    for g in consumed:
        got[g.partition].append(g)
    assert set(got) == set(expected), f"consumed partitions {sorted(got)} != {sorted(expected)}"
    for p, records in got.items():
        offsets = [g.offset for g in records]
        want = list(range(len(expected[p])))
        if offsets != want:
            raise AssertionError(
                f"partition {p}: consumed {len(offsets)} records, expected offsets 0.."
                f"{len(want) - 1} once each in order; first difference at "
                f"{_first_difference(offsets, want)}"
            )
    for g in consumed:
        s = delivered[(g.partition, g.offset)]
        where = f"partition {g.partition} offset {g.offset} (key {s.key!r})"
        assert g.key == s.key, f"{where}: key {g.key!r}"
        assert g.value == s.value, f"{where}: value {g.value!r:.80} != {s.value!r:.80}"
        assert g.headers == s.headers, f"{where}: headers {g.headers!r} != {s.headers!r}"
        if log_append_window is None:
            assert not g.log_append_time, f"{where}: LogAppendTime on a CreateTime topic"
            assert g.timestamp_ms == s.timestamp_ms, f"{where}: timestamp {g.timestamp_ms}"
        else:
            lo, hi = log_append_window
            assert g.log_append_time, f"{where}: CreateTime on a LogAppendTime topic"
            assert lo <= g.timestamp_ms <= hi, f"{where}: {g.timestamp_ms} not in [{lo}, {hi}]"
            assert g.timestamp_ms != s.timestamp_ms
            if append_times is not None:
                assert g.timestamp_ms == append_times[(g.partition, g.offset)], where


def _first_difference(a: list[int], b: list[int]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"position {i}: got offset {x}, expected {y}"
    return f"position {min(len(a), len(b))}: lengths {len(a)} vs {len(b)}"


def expected_offset_for_time(
    delivered: Mapping[tuple[int, int], Sent], partition: int, target_ms: int
) -> int | None:
    """Kafka's answer: the first offset whose timestamp is >= target (None when there is none)."""
    hits = [o for (p, o), s in delivered.items() if p == partition and s.timestamp_ms >= target_ms]
    return min(hits) if hits else None


def time_targets(delivered: Mapping[tuple[int, int], Sent], partition: int) -> list[int]:
    """Timestamps to look up in ``partition``: before everything, the first, a record in the
    middle, between two records, the last, after everything."""
    stamps = sorted(s.timestamp_ms for (p, _), s in delivered.items() if p == partition)
    mid = stamps[len(stamps) // 2]
    gap = next(
        (a + 1 for a, b in itertools.pairwise(stamps) if b - a > 1), stamps[0] + 1
    )
    return [stamps[0] - 10_000, stamps[0], mid, gap, stamps[-1], stamps[-1] + 1]


def normalise_headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes(v)) for k, v in headers or ())


# --- the broker's files ---------------------------------------------------------------------


def partition_batches(
    data_dir: Path, topic: str, partition: int
) -> Iterator[tuple[BatchHeader, list[Record]]]:
    """Every batch of ``topic``-``partition`` as stored, read from the files (readonly)."""
    from seriatim.storage import LogConfig, PartitionLog

    plog = PartitionLog.open(
        data_dir / f"{topic}-{partition}", LogConfig(), readonly=True, create=False
    )
    try:
        offset = plog.start_offset
        while offset < plog.end_offset:
            data = plog.read(offset, 1 << 24).bytes()
            for pos, header in iter_batches(data):
                batch = data[pos : pos + header.size]
                yield header, list(iter_records(batch))
                offset = header.next_offset
    finally:
        plog.close()


# --- a raw wire client -----------------------------------------------------------------------


class RawClient(RawConnection):
    """One connection, one request at a time, kio entities in and out (fields as keywords)."""

    def __init__(self, bootstrap: str, timeout_s: float = 30.0) -> None:
        super().__init__(bootstrap, timeout_s=timeout_s, client_id="interop-raw")

    def request(self, api_key: int, version: int, body: Any = None, **fields: Any) -> Any:
        return super().request(api_key, version, fields if body is None else body)


def produce_raw(
    client: RawClient, topic: str, partition: int, batch: bytes, acks: int = -1
) -> int:
    """Produce one batch with Produce v9; returns the base offset (asserts no error)."""
    resp = client.request(
        0,
        9,
        acks=acks,
        timeout_ms=30_000,
        topic_data=[
            {"name": topic, "partition_data": [{"index": partition, "records": batch}]}
        ],
    )
    part = resp.responses[0].partition_responses[0]
    assert part.error_code.value == 0, part
    return int(part.base_offset)


# --- the round trip every client runs -------------------------------------------------------

Delivered = dict[tuple[int, int], Sent]
AppendTimes = dict[tuple[int, int], int]


class Driver:
    """What the round trip needs from a client library (one subclass per library)."""

    name = "?"

    def create_topic(
        self, bootstrap: str, name: str, partitions: int, configs: Mapping[str, str]
    ) -> None:
        raise NotImplementedError

    def delete_topic(self, bootstrap: str, name: str) -> None:
        raise NotImplementedError

    def list_topics(self, bootstrap: str) -> set[str]:
        raise NotImplementedError

    def produce(
        self, bootstrap: str, topic: str, msgs: list[Sent], codec: str, acks: int
    ) -> tuple[Delivered, AppendTimes]:
        """Produce ``msgs`` in order; return the delivery reports and, for LogAppendTime
        topics, the append time each report carried."""
        raise NotImplementedError

    def consume(
        self, bootstrap: str, topic: str, total: int, read_committed: bool
    ) -> list[Got]:
        """Assign every partition manually, read from the beginning until ``total`` records
        arrived (or the deadline passed), in the order the client returned them."""
        raise NotImplementedError

    def offsets_for_times(
        self, bootstrap: str, topic: str, queries: list[tuple[int, int]]
    ) -> dict[tuple[int, int], int | None]:
        """ListOffsets by timestamp: ``(partition, ts) -> offset`` (None when there is none)."""
        raise NotImplementedError

    def watermarks(self, bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
        """partition -> (earliest, latest) offsets."""
        raise NotImplementedError


def check_stored_codecs(data_dir: Path, topic: str, partitions: int = PARTITIONS) -> None:
    """Each batch on disk holds one producer's messages (key ``<client>-<codec>-...``) and is
    compressed with that producer's codec: compression was neither dropped nor changed.
    Batches of fewer than SMALL_BATCH records may be uncompressed (kafka-python and librdkafka
    send them so when compressing does not help), but every codec must appear.

    librdkafka < 2.11.1 (kcat) drops compression silently unless Produce is advertised from v0
    (notes, pitfall 5), and every librdkafka drops lz4 unless FindCoordinator v0 is advertised
    (rdkafka_feature.c: the LZ4 feature "depends" on FindCoordinator 0..0).
    """
    seen: set[str] = set()
    for p in range(partitions):
        for header, records in partition_batches(data_dir, topic, p):
            codecs = {r.key.split(b"-")[1].decode() for r in records if r.key is not None}
            assert len(codecs) == 1, f"batch at {p}/{header.base_offset} mixes {codecs}"
            codec = codecs.pop()
            if header.record_count < SMALL_BATCH and header.compression == CODEC_IDS["none"]:
                continue  # clients skip compression when it does not shrink a tiny batch
            seen.add(codec)
            assert header.compression == CODEC_IDS[codec], (
                f"{topic}-{p} batch at offset {header.base_offset} ({header.record_count} "
                f"records from a {codec} producer) stored with codec {int(header.compression)}; "
                "librdkafka needs Produce v0 and FindCoordinator v0 advertised to compress"
            )
    assert seen == set(CODECS), f"codecs found on disk: {sorted(seen)}"


def _check_times(
    driver: Driver, bootstrap: str, topic: str, delivered: Delivered, partitions: int
) -> None:
    queries = [(p, ts) for p in range(partitions) for ts in time_targets(delivered, p)]
    answers = driver.offsets_for_times(bootstrap, topic, queries)
    for p, ts in queries:
        want = expected_offset_for_time(delivered, p, ts)
        assert answers[(p, ts)] == want, (
            f"{topic}-{p}: ListOffsets for timestamp {ts} gave {answers[(p, ts)]}, want {want}"
        )
    counts = {p: len(offsets) for p, offsets in _per_partition_offsets(delivered).items()}
    assert driver.watermarks(bootstrap, topic) == {p: (0, counts[p]) for p in range(partitions)}


def run_roundtrip(
    driver: Driver,
    broker: Any,
    per_combo: int = 1000,
    per_lat: int = 100,
) -> None:
    """The issue's interop scenario for one client (see the module docstring)."""
    bs = broker.bootstrap
    topic, lat = f"interop-{driver.name}", f"interop-{driver.name}-lat"
    driver.create_topic(bs, topic, PARTITIONS, {})
    driver.create_topic(bs, lat, PARTITIONS, {"message.timestamp.type": "LogAppendTime"})
    assert {topic, lat} <= driver.list_topics(bs)

    # 5 codecs x 2 acks, one producer each, CreateTime stamps an hour old and increasing.
    sent: list[Sent] = []
    delivered: Delivered = {}
    first_ts = now_ms() - 3_600_000
    for codec in CODECS:
        for acks in ACKS:
            msgs = make_messages(f"{driver.name}-{codec}-{acks}", per_combo, first_ts + len(sent))
            got, _ = driver.produce(bs, topic, msgs, codec, acks)
            assert not set(got) & set(delivered), "an offset was reported twice"
            delivered.update(got)
            sent += msgs
    check_delivered(sent, delivered)
    check_stored_codecs(broker.data_dir, topic)

    # LogAppendTime: the producers send day-old stamps; consumers must see broker time.
    lat_sent: list[Sent] = []
    lat_delivered: Delivered = {}
    append_times: AppendTimes = {}
    before = now_ms()
    for codec in CODECS:
        msgs = make_messages(
            f"{driver.name}-{codec}-lat", per_lat, first_ts - 86_400_000 + len(lat_sent)
        )
        got, times = driver.produce(bs, lat, msgs, codec, -1)
        lat_delivered.update(got)
        append_times.update(times)
        lat_sent += msgs
    after = now_ms()
    check_delivered(lat_sent, lat_delivered)
    assert set(append_times) == set(lat_delivered), "a LogAppendTime ack carried no append time"
    lat_effective = {
        k: Sent(s.key, s.value, s.headers, append_times[k]) for k, s in lat_delivered.items()
    }

    def verify(read_committed: bool) -> None:
        got = driver.consume(bs, topic, len(delivered), read_committed)
        check_consumed(delivered, got)
        _check_times(driver, bs, topic, delivered, PARTITIONS)
        got = driver.consume(bs, lat, len(lat_delivered), read_committed)
        check_consumed(
            lat_delivered, got, log_append_window=(before, after), append_times=append_times
        )
        _check_times(driver, bs, lat, lat_effective, PARTITIONS)

    verify(read_committed=True)
    broker.restart()
    verify(read_committed=False)

    driver.delete_topic(bs, topic)
    driver.delete_topic(bs, lat)
    remaining = driver.list_topics(bs)
    assert topic not in remaining and lat not in remaining, remaining
    assert not (broker.data_dir / f"{topic}-0").exists()
