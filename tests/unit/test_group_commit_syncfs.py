"""Group commit with ``log.flush.syncfs``: a round over several real logs makes their data
durable with one syncfs(2) instead of one fdatasync per log, advances every log's flushed
offset, and falls back to per-log fdatasyncs when syncfs fails (so an error still lands on
the log it belongs to)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seriatim.broker import commit
from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.fileops import FileOps
from seriatim.storage.log import FlushTicket

pytestmark = pytest.mark.skipif(not commit.syncfs_supported(), reason="needs Linux >= 5.8")


class CountingOps(FileOps):
    __slots__ = ("datasyncs",)

    def __init__(self) -> None:
        self.datasyncs = 0

    def fdatasync(self, fd: int) -> None:
        self.datasyncs += 1
        super().fdatasync(fd)


class Target:
    """What the broker hands the committer: a log, flushable whole or in two phases."""

    def __init__(self, plog: PartitionLog) -> None:
        self.plog = plog

    @property
    def directory(self) -> str:
        return self.plog.path

    def flush(self) -> None:
        self.plog.flush()

    def flush_begin(self) -> FlushTicket | None:
        return self.plog.flush_begin()

    def flush_end(self, ticket: FlushTicket, *, data_synced: bool) -> None:
        self.plog.flush_end(ticket, data_synced=data_synced)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[list[PartitionLog], CountingOps]]:
    ops = CountingOps()
    opened = [PartitionLog.open(tmp_path / f"p{i}", LogConfig(), fs=ops, group_commit=True)
              for i in range(3)]
    ops.datasyncs = 0
    yield opened, ops
    for plog in opened:
        plog.close()


def _round(plogs: list[PartitionLog]) -> None:
    committer = commit.GroupCommitter(thread_name="test-syncfs", use_syncfs=True)

    async def scenario() -> None:
        targets = [Target(p) for p in plogs]
        await asyncio.gather(*(committer.sync(t) for t in targets))

    try:
        asyncio.run(scenario())
    finally:
        committer.close()


def _append(plogs: list[PartitionLog]) -> None:
    for plog in plogs:
        plog.append_batch(bytearray(build_batch([(b"k", b"v" * 100)] * 5)))
        assert plog.flushed_offset < plog.end_offset


def test_one_syncfs_covers_every_log_of_the_round(logs: Any) -> None:
    plogs, ops = logs
    _append(plogs)
    _round(plogs)
    assert [p.flushed_offset for p in plogs] == [p.end_offset for p in plogs]
    assert ops.datasyncs == 0  # the syncfs made the data durable


def test_a_failed_syncfs_falls_back_to_each_logs_fdatasync(logs: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    plogs, ops = logs

    def failing(path: str) -> None:
        raise OSError(5, f"syncfs({path}): Input/output error")

    monkeypatch.setattr(commit, "_syncfs", failing)
    _append(plogs)
    _round(plogs)
    assert [p.flushed_offset for p in plogs] == [p.end_offset for p in plogs]
    assert ops.datasyncs == len(plogs)
    assert all(p.offline_reason is None for p in plogs)


def test_a_log_closed_before_the_round_fails_only_its_waiters(logs: Any) -> None:
    plogs, _ = logs
    _append(plogs)
    plogs[1].close()
    committer = commit.GroupCommitter(thread_name="test-syncfs", use_syncfs=True)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(committer.sync(Target(p)) for p in plogs),
                                    return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        committer.close()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    assert plogs[0].flushed_offset == plogs[0].end_offset


def test_a_broker_with_syncfs_acknowledges_and_serves_every_record(tmp_path: Path) -> None:
    ck = pytest.importorskip("confluent_kafka")
    import seriatim.testing

    with seriatim.testing.broker(tmp_path / "d", num_partitions=3,
                                 config={"log.flush.syncfs": "true"}) as b:
        p = ck.Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1})
        for i in range(3000):
            p.produce("s", value=b"%d" % i, partition=i % 3)
        assert p.flush(30) == 0
        c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
        got: set[bytes] = set()
        eof: set[int] = set()
        try:
            c.subscribe(["s"])
            while len(eof) < 3:
                m = c.poll(10)
                assert m is not None, "nothing for 10 s"
                if m.error():
                    eof.add(m.partition())
                else:
                    got.add(m.value())
        finally:
            c.close()
        assert got == {b"%d" % i for i in range(3000)}
