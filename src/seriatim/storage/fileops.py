"""The few system calls of the storage layer that can fail in interesting ways, as a seam.

Theory of operation: every fsync, directory fsync and data write of ``seriatim.storage`` goes
through a :class:`FileOps` object. Production uses :data:`REAL_FILE_OPS`; tests pass a subclass
that fails on purpose (an fsync that raises ``EIO``, a write that is short or raises
``ENOSPC``) to prove the fail-stop rule: after a failed fsync the log goes offline and never
acknowledges again. This is a seam, not a mock: the subclass still talks to the real file
system.

:func:`write_all` loops on short writes (they happen on full disks and for signals).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

Buffer = bytes | bytearray | memoryview


class FileOps:
    """Real file operations. Subclass and override to inject faults in tests."""

    __slots__ = ()

    def write(self, fd: int, data: Buffer) -> int:
        return os.write(fd, data)

    def writev(self, fd: int, buffers: Sequence[Buffer]) -> int:
        return os.writev(fd, buffers)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        """Make creations, renames and deletions inside ``path`` durable (KAFKA-3968)."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)


REAL_FILE_OPS = FileOps()


def write_all(ops: FileOps, fd: int, data: Buffer) -> None:
    """Write every byte of ``data`` to ``fd``, looping on short writes."""
    n = ops.write(fd, data)
    if n == len(data):
        return
    view = memoryview(data).cast("B")
    while n < len(view):
        view = view[n:]
        n = ops.write(fd, view)


def writev_all(ops: FileOps, fd: int, buffers: Sequence[Buffer]) -> int:
    """Write the concatenation of ``buffers`` to ``fd``, looping on short writes."""
    total = sum(len(b) for b in buffers)
    n = ops.writev(fd, buffers)
    if n == total:
        return total
    # Rare path: find where the short write stopped and finish with plain writes.
    done = n
    for buf in buffers:
        view = memoryview(buf).cast("B")
        if done >= len(view):
            done -= len(view)
            continue
        write_all(ops, fd, view[done:])
        done = 0
    return total


def pread_exact(fd: int, size: int, position: int) -> bytes:
    """Read ``size`` bytes at ``position`` (looping on short reads); fewer only at EOF."""
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
