"""Metadata responses are cached encoded, and the cache never serves a stale topic list.

Over real sockets against an in-process broker: repeated requests get byte-identical bodies
(only the correlation id differs); creating a topic, adding partitions, deleting a topic and
auto-creating one all show up in the very next response of every cached shape.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import seriatim.testing
from seriatim.testing.wire import RawConnection, decode_response, encode_request


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[seriatim.testing.InProcessBroker]:
    with seriatim.testing.broker(tmp_path / "data", num_partitions=2,
                                 config={"auto.create.topics.enable": "true"}) as b:
        yield b


def _metadata_frame(c: RawConnection, version: int, topics: list[str] | None,
                    auto: bool = False) -> tuple[bytes, Any]:
    body: dict[str, Any] = {"topics": None if topics is None else [{"name": t} for t in topics]}
    if version >= 4:
        body["allow_auto_topic_creation"] = auto
    c.corr += 1
    c.sock.sendall(encode_request(3, version, c.corr, body))
    frame = c.recv_frame()
    corr, entity = decode_response(3, version, frame)
    assert corr == c.corr
    return frame, entity


def _counts(entity: Any) -> dict[str, int]:
    return {t.name: len(t.partitions) for t in entity.topics if t.error_code.value == 0}


def _create(c: RawConnection, name: str, partitions: int) -> None:
    resp = c.request(19, 4, {"topics": [{"name": name, "num_partitions": partitions,
                                         "replication_factor": 1, "assignments": [],
                                         "configs": []}],
                             "timeout_ms": 5000, "validate_only": False})
    assert resp.topics[0].error_code.value == 0


@pytest.mark.parametrize("version", [1, 9, 12])
def test_repeated_requests_share_one_encoded_body(broker: Any, version: int) -> None:
    with RawConnection(broker.bootstrap) as c:
        _create(c, "alpha", 3)
        first, _ = _metadata_frame(c, version, None)
        second, entity = _metadata_frame(c, version, None)
        assert struct.unpack_from(">i", first)[0] != struct.unpack_from(">i", second)[0]
        assert first[4:] == second[4:]
        assert _counts(entity) == {"alpha": 3}


@pytest.mark.parametrize("version", [1, 12])
def test_topic_changes_invalidate_every_cached_shape(broker: Any, version: int) -> None:
    with RawConnection(broker.bootstrap) as c:
        _create(c, "alpha", 1)
        assert _counts(_metadata_frame(c, version, None)[1]) == {"alpha": 1}
        assert _counts(_metadata_frame(c, version, ["alpha"])[1]) == {"alpha": 1}

        _create(c, "beta", 2)
        assert _counts(_metadata_frame(c, version, None)[1]) == {"alpha": 1, "beta": 2}

        resp = c.request(37, 1, {"topics": [{"name": "alpha", "count": 4, "assignments": None}],
                                 "timeout_ms": 5000, "validate_only": False})
        assert resp.results[0].error_code.value == 0
        assert _counts(_metadata_frame(c, version, ["alpha"])[1]) == {"alpha": 4}

        resp = c.request(20, 4, {"topic_names": ["beta"], "timeout_ms": 5000})
        assert resp.responses[0].error_code.value == 0
        assert _counts(_metadata_frame(c, version, None)[1]) == {"alpha": 4}
        again = _metadata_frame(c, version, ["beta"])[1]  # cached before the delete
        if version >= 4:  # allow_auto_topic_creation=false
            assert [t.error_code.value for t in again.topics] == [3]  # UNKNOWN_TOPIC_OR_PARTITION
        else:  # v0-v3 always ask for auto-creation: a new "beta" with num.partitions
            assert _counts(again) == {"beta": 2}


def test_auto_creation_is_seen_by_a_cached_list_of_all_topics(broker: Any) -> None:
    with RawConnection(broker.bootstrap) as c:
        assert _counts(_metadata_frame(c, 9, None)[1]) == {}
        assert _counts(_metadata_frame(c, 9, ["fresh"], auto=True)[1]) == {"fresh": 2}
        assert _counts(_metadata_frame(c, 9, None)[1]) == {"fresh": 2}
        # The same request again (now a cache hit) still reports it, without creating more.
        assert _counts(_metadata_frame(c, 9, ["fresh"], auto=True)[1]) == {"fresh": 2}
