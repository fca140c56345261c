"""Full disks and I/O errors: refuse the append, damage nothing, resume when space returns.

The behaviour (storage/log.py, ``PartitionLog._refuse_append``):

* a batch **write** that fails with ENOSPC/EDQUOT: the partial batch is cut back off the
  segment, that produce gets KAFKA_STORAGE_ERROR, the log stays online and consistent, and
  appends succeed again once space is freed (no fsync failed and nothing was acknowledged, so
  there is no fsyncgate hazard);
* an **fsync** failure (EIO, or even ENOSPC): fail-stop, never retried and acknowledged.

Proved with the FileOps seam (a writev that writes half the batch and then hits ENOSPC; an
fdatasync that fails) and, as root, on a real 8 MiB tmpfs holding a broker subprocess's data
dir (skipped with the reason when ``mount`` is not permitted).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from robust_support import BrokerProcess, RawConn, create_topic

from seriatim.errors import ErrorCode, StorageError
from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.fileops import Buffer, FileOps


class FullDisk(FileOps):
    """writev writes half of what it is given, then the disk is full (as a real one does)."""

    __slots__ = ("fsync_errno", "full")

    def __init__(self) -> None:
        self.full = False
        self.fsync_errno = 0

    def writev(self, fd: int, buffers: Sequence[Buffer]) -> int:
        if not self.full:
            return super().writev(fd, buffers)
        data = b"".join(bytes(b) for b in buffers)
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "injected ENOSPC")

    def write(self, fd: int, data: Buffer) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "injected ENOSPC")
        return super().write(fd, data)

    def fdatasync(self, fd: int) -> None:
        if self.fsync_errno:
            raise OSError(self.fsync_errno, "injected fsync failure")
        super().fdatasync(fd)


def batch(i: int, n: int = 3) -> bytes:
    return build_batch([(b"k%d-%d" % (i, j), b"v" * 100) for j in range(n)])


@pytest.mark.parametrize("policy", ["always", "never"])
def test_enospc_on_write_refuses_the_append_and_keeps_the_log_online(
    tmp_path: Path, policy: str
) -> None:
    fs = FullDisk()
    path = tmp_path / "p"
    log = PartitionLog.open(path, LogConfig(flush_policy=policy), fs=fs)
    try:
        for i in range(5):
            log.append_batch(batch(i))
        size, end = log.size_bytes, log.end_offset
        seg_file = Path(log.segment_paths()[-1])
        fs.full = True
        for i in range(3):
            with pytest.raises(StorageError, match=r"refused: .*No space|ENOSPC"):
                log.append_batch(batch(100 + i))
            assert log.offline_reason is None
            assert seg_file.stat().st_size == size, "the partial batch was not cut away"
            assert (log.end_offset, log.size_bytes) == (end, size)
        assert [r.offset for r in log.read_records(0)] == list(range(end))
        fs.full = False
        info = log.append_batch(batch(5))
        assert info.base_offset == end
        log.flush()
    finally:
        log.close()
    with PartitionLog.open(path, LogConfig()) as again:
        assert again.recovery_report.bytes_truncated == 0
        keys = [r.key for r in again.read_records(0)]
        assert keys == [b"k%d-%d" % (i, j) for i in range(6) for j in range(3)]


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
def test_a_failed_fsync_is_fail_stop_even_for_enospc(tmp_path: Path, err: int) -> None:
    fs = FullDisk()
    log = PartitionLog.open(tmp_path / "p", LogConfig(flush_policy="always"), fs=fs)
    try:
        log.append_batch(batch(0))
        fs.fsync_errno = err
        with pytest.raises(StorageError, match="offline"):
            log.append_batch(batch(1))
        fs.fsync_errno = 0  # a retry would "succeed": fail-stop means we never try
        assert log.offline_reason is not None
        with pytest.raises(StorageError, match="offline"):
            log.append_batch(batch(2))
    finally:
        log.close()


def test_eio_on_write_is_fail_stop(tmp_path: Path) -> None:
    class EioWrite(FileOps):
        __slots__ = ()

        def writev(self, fd: int, buffers: Sequence[Buffer]) -> int:
            raise OSError(errno.EIO, "injected EIO")

    log = PartitionLog.open(tmp_path / "p", LogConfig(flush_policy="always"), fs=EioWrite())
    try:
        with pytest.raises(StorageError, match="offline"):
            log.append_batch(batch(0))
        assert log.offline_reason is not None
    finally:
        log.close()


# --- a real full disk -------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                          check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def produce(conn: RawConn, value: bytes) -> tuple[int, int]:
    body = {"acks": -1, "timeout_ms": 5000, "topic_data": [{"name": "full", "partition_data": [
        {"index": 0, "records": build_batch([(None, value)])}]}]}
    resp = conn.request(0, 9, body)
    part = resp.responses[0].partition_responses[0]
    return int(part.error_code), int(part.base_offset)


def fetch_all(conn: RawConn) -> list[tuple[int, bytes | None]]:
    from seriatim.records import iter_batches, iter_records

    out: list[tuple[int, bytes | None]] = []
    offset = 0
    while True:
        body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 16 << 20,
                "topics": [{"topic": "full", "partitions": [
                    {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 16 << 20}]}]}
        part = conn.request(1, 12, body).responses[0].partitions[0]
        assert int(part.error_code.value) == 0
        data = bytes(part.records or b"")
        if not data:
            return out
        for pos, header in iter_batches(data):
            out += [(r.offset, r.value) for r in iter_records(data[pos : pos + header.size])]
            offset = header.next_offset


def test_a_full_tmpfs_gives_storage_errors_damages_nothing_and_recovers(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"\x00" * (2 << 20))  # freed later to make room
    config = {"log.flush.policy": "always", "log.segment.bytes": 64 << 20}
    broker = BrokerProcess(small_tmpfs / "data", config, log_path=tmp_path / "broker.log")
    acked: dict[int, bytes] = {}
    try:
        broker.start()
        create_topic(broker.bootstrap, "full")
        with RawConn(broker.bootstrap) as c:
            refused = 0
            for i in range(200):  # 200 x 100 KB > 8 MiB: the disk fills up
                value = bytes([i % 251]) * 100_000
                code, base = produce(c, value)
                if code == ErrorCode.NONE:
                    assert refused == 0, "an append succeeded after the disk was full"
                    acked[base] = value
                else:
                    assert code == ErrorCode.KAFKA_STORAGE_ERROR, code
                    refused += 1
                    if refused >= 3:
                        break
            assert refused == 3 and len(acked) > 10
            assert broker.alive()
            assert c.api_versions_ok()
            # Nothing written is damaged, and the offsets have no hole.
            assert fetch_all(c) == sorted(acked.items())
            ballast.unlink()  # space returns
            code, base = produce(c, b"after")
            assert code == ErrorCode.NONE
            assert base == max(acked) + 1
            acked[base] = b"after"
        broker.kill9()
        broker.start()
        with RawConn(broker.bootstrap) as c:
            assert fetch_all(c) == sorted(acked.items())
    finally:
        broker.close()
