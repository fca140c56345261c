"""check_record_framing: the run-probing walk accepts exactly what a record-by-record walk
accepts (records missing, left over, or running past the end are refused)."""

from __future__ import annotations

import random

import pytest

from seriatim.errors import CorruptRecordError, InvalidRecordError
from seriatim.records import BATCH_HEADER_SIZE, build_batch, check_record_framing
from seriatim.records.varint import decode_varint


def _reference(buf: bytes, count: int) -> None:
    pos, end = BATCH_HEADER_SIZE, len(buf)
    for _ in range(count):
        if pos >= end:
            raise InvalidRecordError("fewer")
        length, pos = decode_varint(buf, pos, end)
        if length <= 0 or length > end - pos:
            raise InvalidRecordError("past the end")
        pos += length
    if pos != end:
        raise InvalidRecordError("count")


def _outcome(fn, buf: bytes, count: int) -> str:
    try:
        fn(buf, count)
    except (InvalidRecordError, CorruptRecordError) as exc:
        return type(exc).__name__
    return "ok"


def _batches(rng: random.Random) -> list[bytes]:
    out = []
    for n in (1, 2, 5, 63, 64, 65, 300, 9000):
        out.append(build_batch([(None, b"x" * 100)] * n, timestamp_ms=1))
        out.append(build_batch([(b"k%d" % i, b"v" * rng.randrange(0, 300)) for i in range(n)],
                               timestamp_ms=1))
        mixed = [(None, b"y" * (100 if rng.random() < 0.9 else rng.randrange(0, 9000)))
                 for _ in range(n)]
        out.append(build_batch(mixed, timestamp_ms=1))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_reference_walk(seed: int) -> None:
    rng = random.Random(seed)
    for batch in _batches(rng):
        count = int.from_bytes(batch[57:61], "big")
        for c in (count, count - 1, count + 1, 0):
            want = _outcome(_reference, batch, c)
            assert _outcome(check_record_framing, batch, c) == want
            # The broker hands views of the request frame: probed window by window, not copied.
            assert _outcome(check_record_framing, memoryview(batch), c) == want
            assert _outcome(check_record_framing, bytearray(batch), c) == want
        for _ in range(40):
            mutated = bytearray(batch)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(BATCH_HEADER_SIZE, len(mutated))] = rng.randrange(256)
            m = bytes(mutated)
            if rng.random() < 0.3:
                m = m[: rng.randrange(BATCH_HEADER_SIZE, len(m) + 1)]
            if rng.random() < 0.2:
                m = m + bytes(rng.randrange(1, 20))
            got = _outcome(check_record_framing, m, count)
            assert got == _outcome(_reference, m, count), (len(m), count)
            assert _outcome(check_record_framing, memoryview(m), count) == got


def test_valid_batch_passes() -> None:
    batch = build_batch([(None, b"x" * 100)] * 9000, timestamp_ms=1)
    check_record_framing(batch, 9000)
    with pytest.raises(InvalidRecordError):
        check_record_framing(batch, 8999)
    with pytest.raises(InvalidRecordError):
        check_record_framing(batch, 9001)
