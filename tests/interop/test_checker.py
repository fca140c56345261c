"""The interop checker itself: it must catch every kind of wrong answer (no broker needed)."""

from __future__ import annotations

import dataclasses

import pytest
from interop_support import (
    Got,
    Sent,
    check_consumed,
    check_delivered,
    expected_offset_for_time,
    make_messages,
)

pytestmark = pytest.mark.interop


def _fixture() -> tuple[list[Sent], dict[tuple[int, int], Sent], list[Got]]:
    sent = make_messages("chk-none-1", 30, 1_000)
    delivered = {(i % 3, i // 3): m for i, m in enumerate(sent)}
    got = [
        Got(p, o, m.key, m.value, m.headers, m.timestamp_ms, False)
        for (p, o), m in sorted(delivered.items())
    ]
    return sent, delivered, got


def test_a_correct_answer_passes() -> None:
    sent, delivered, got = _fixture()
    check_delivered(sent, delivered)
    check_consumed(delivered, got)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda g: g[:-1],  # a record lost
        lambda g: [*g, g[-1]],  # a duplicate
        lambda g: [g[1], g[0], *g[2:]],  # out of order within a partition
        lambda g: [dataclasses.replace(g[0], key=b"x"), *g[1:]],
        lambda g: [dataclasses.replace(g[0], value=b"x"), *g[1:]],
        lambda g: [dataclasses.replace(g[0], headers=g[0].headers[::-1]), *g[1:]],
        lambda g: [dataclasses.replace(g[0], timestamp_ms=g[0].timestamp_ms + 1), *g[1:]],
        lambda g: [dataclasses.replace(g[0], log_append_time=True), *g[1:]],
    ],
)
def test_every_kind_of_wrong_answer_fails(corrupt) -> None:  # type: ignore[no-untyped-def]
    _, delivered, got = _fixture()
    with pytest.raises(AssertionError):
        check_consumed(delivered, corrupt(got))


def test_gaps_in_delivery_reports_fail() -> None:
    sent, delivered, _ = _fixture()
    gappy = {(p, o + (1 if p == 0 and o > 3 else 0)): m for (p, o), m in delivered.items()}
    with pytest.raises(AssertionError):
        check_delivered(sent, gappy)


def test_log_append_time_must_lie_in_the_window() -> None:
    _, delivered, got = _fixture()
    lat = [dataclasses.replace(g, timestamp_ms=5_000, log_append_time=True) for g in got]
    check_consumed(delivered, lat, log_append_window=(4_000, 6_000))
    with pytest.raises(AssertionError):
        check_consumed(delivered, lat, log_append_window=(6_000, 7_000))


def test_offset_for_time_is_the_first_offset_at_or_after() -> None:
    _, delivered, _ = _fixture()
    # partition 1 holds messages 1, 4, 7, ... with timestamps 1001, 1004, ...
    assert expected_offset_for_time(delivered, 1, 0) == 0
    assert expected_offset_for_time(delivered, 1, 1002) == 1
    assert expected_offset_for_time(delivered, 1, 1004) == 1
    assert expected_offset_for_time(delivered, 1, 10_000) is None
