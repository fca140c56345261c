"""The hand-written Produce and Fetch encoders are byte-identical to kio's, every version."""

from __future__ import annotations

from typing import Any

import pytest
from kio.serial.readers import tz_aware_from_i64
from kio.static.primitive import i64

from seriatim.errors import ErrorCode
from seriatim.protocol import (
    FETCH_VERSIONS,
    PRODUCE_VERSIONS,
    FetchPartitionData,
    ProducePartitionResult,
    encode_fetch_response,
    encode_produce_response,
    encode_response,
    make,
    response_class,
)

# --- Produce -------------------------------------------------------------------------------

PRODUCE_CASES: list[list[tuple[str, list[ProducePartitionResult]]]] = [
    [],
    [("t", [])],
    [("topic-a", [ProducePartitionResult(0, ErrorCode.NONE, 0)])],
    [
        (
            "orders",
            [
                ProducePartitionResult(0, ErrorCode.NONE, 1234, 1_700_000_000_123, 17),
                ProducePartitionResult(
                    1,
                    ErrorCode.INVALID_TIMESTAMP,
                    -1,
                    -1,
                    0,
                    record_errors=[(0, "too old"), (3, None)],
                    error_message="bad timestamps",
                ),
                ProducePartitionResult(2, ErrorCode.NOT_LEADER_OR_FOLLOWER, -1),
            ],
        ),
        ("ünïcode-tøpic", [ProducePartitionResult(7, ErrorCode.KAFKA_STORAGE_ERROR, 2**40)]),
    ],
]


def kio_produce(version: int, topics: Any, throttle_ms: int) -> Any:
    cls = response_class(0, version)
    fields = {f for f in cls.__dataclass_fields__}
    part_cls_fields = {"record_errors", "error_message", "log_start_offset"}

    def partition(p: ProducePartitionResult) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": p.index,
            "error_code": p.error_code,
            "base_offset": p.base_offset,
            "log_append_time": None
            if p.log_append_time_ms == -1
            else tz_aware_from_i64(i64(p.log_append_time_ms)),
        }
        if version >= 5:
            d["log_start_offset"] = p.log_start_offset
        if version >= 8:
            d["record_errors"] = [
                {"batch_index": i, "batch_index_error_message": m} for i, m in p.record_errors
            ]
            d["error_message"] = p.error_message
        assert part_cls_fields  # (documentation: version-dependent fields above)
        return d

    assert "responses" in fields
    return make(
        cls,
        responses=[
            {"name": name, "partition_responses": [partition(p) for p in parts]}
            for name, parts in topics
        ],
        throttle_time_ms=throttle_ms,
    )


def strip_unversioned(topics: Any, version: int) -> Any:
    """Fields a version cannot carry are not expected to round-trip: zero them for kio."""
    if version >= 8:
        return topics
    return [
        (
            n,
            [
                ProducePartitionResult(
                    p.index, p.error_code, p.base_offset, p.log_append_time_ms, p.log_start_offset
                )
                for p in parts
            ],
        )
        for n, parts in topics
    ]


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
@pytest.mark.parametrize("case", range(len(PRODUCE_CASES)))
def test_produce_response_is_byte_identical_to_kio(version: int, case: int) -> None:
    topics = strip_unversioned(PRODUCE_CASES[case], version)
    ours = encode_produce_response(version, 99, topics, throttle_time_ms=case * 7)
    theirs = encode_response(99, kio_produce(version, topics, case * 7))
    assert ours == theirs


def test_produce_encoder_rejects_versions_it_does_not_write() -> None:
    with pytest.raises(ValueError):
        encode_produce_response(2, 1, [])
    with pytest.raises(ValueError):
        encode_produce_response(12, 1, [])


# --- Fetch ---------------------------------------------------------------------------------

BATCH_A = bytes(range(256)) * 3
BATCH_B = b"\x01" * 1000


def fetch_cases() -> list[list[tuple[str, list[FetchPartitionData]]]]:
    return [
        [],
        [("empty-topic", [])],
        [("t", [FetchPartitionData(0, ErrorCode.NONE, 10, 10, 0)])],  # empty records
        [("t", [FetchPartitionData(0, ErrorCode.NONE, 10, 10, 0, records=None)])],  # null
        [
            (
                "orders",
                [
                    FetchPartitionData(0, ErrorCode.NONE, 500, 500, 3, records=[BATCH_A]),
                    FetchPartitionData(
                        1,
                        ErrorCode.NONE,
                        900,
                        880,
                        0,
                        aborted_transactions=[(12, 800), (13, 850)],
                        preferred_read_replica=2,
                        # several slices (as from several file ranges), one empty
                        records=[memoryview(BATCH_B)[:300], b"", memoryview(BATCH_B)[300:]],
                    ),
                    FetchPartitionData(2, ErrorCode.OFFSET_OUT_OF_RANGE, -1, -1, -1),
                    FetchPartitionData(3, ErrorCode.NONE, 1, 1, 0, aborted_transactions=[]),
                ],
            ),
            (
                "ünï",
                [
                    FetchPartitionData(
                        9, ErrorCode.NONE, 2**40, 2**40, 2**39, records=[BATCH_A, BATCH_B]
                    )
                ],
            ),
        ],
    ]


def kio_fetch(version: int, topics: Any, throttle_ms: int, error: int, session: int) -> Any:
    cls = response_class(1, version)

    def partition(p: FetchPartitionData) -> dict[str, Any]:
        d: dict[str, Any] = {
            "partition_index": p.partition_index,
            "error_code": p.error_code,
            "high_watermark": p.high_watermark,
            "last_stable_offset": p.last_stable_offset,
            "aborted_transactions": None
            if p.aborted_transactions is None
            else [{"producer_id": a, "first_offset": b} for a, b in p.aborted_transactions],
            "records": None if p.records is None else b"".join(p.records),
        }
        if version >= 5:
            d["log_start_offset"] = p.log_start_offset
        if version >= 11:
            d["preferred_read_replica"] = p.preferred_read_replica
        return d

    fields: dict[str, Any] = {
        "throttle_time_ms": throttle_ms,
        "responses": [
            {"topic": name, "partitions": [partition(p) for p in parts]} for name, parts in topics
        ],
    }
    if version >= 7:
        fields["error_code"] = error
        fields["session_id"] = session
    return make(cls, **fields)


@pytest.mark.parametrize("version", FETCH_VERSIONS)
@pytest.mark.parametrize("case", range(len(fetch_cases())))
def test_fetch_response_is_byte_identical_to_kio(version: int, case: int) -> None:
    topics = fetch_cases()[case]
    error = ErrorCode.NONE if case % 2 else ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    session = 0 if version < 7 else case * 1000
    parts = encode_fetch_response(
        version,
        1234,
        throttle_time_ms=case,
        error_code=error if version >= 7 else 0,
        session_id=session,
        topics=topics,
    )
    theirs = encode_response(1234, kio_fetch(version, topics, case, error, session))
    assert b"".join(parts) == theirs


def test_fetch_record_buffers_are_passed_through_not_copied() -> None:
    view = memoryview(BATCH_B)
    parts = encode_fetch_response(
        12, 1, topics=[("t", [FetchPartitionData(0, 0, 5, 5, 0, records=[BATCH_A, view])])]
    )
    assert any(p is BATCH_A for p in parts)
    assert any(p is view for p in parts)
    assert len(parts) == 4  # header chunk, two record buffers, trailer


def test_fetch_without_records_is_a_single_buffer() -> None:
    parts = encode_fetch_response(11, 1, topics=[("t", [FetchPartitionData(0, 0, 5, 5, 0)])])
    assert len(parts) == 1 and isinstance(parts[0], bytes)
