"""One writer per log directory: an exclusive, non-blocking ``flock`` on a lock file.

``flock`` locks belong to an open file description, so a second ``open()`` of the same log in
the *same* process is refused too (unlike ``fcntl`` record locks, which a process shares with
itself). The kernel drops the lock when the process dies, so a crashed writer never leaves a
stale lock behind. Readers take no lock at all.
"""

from __future__ import annotations

import errno
import fcntl
import os

from seriatim.errors import LogLockedError

LOCK_FILE_NAME = ".lock"


class DirLock:
    """Holds the lock on ``<directory>/.lock`` until :meth:`release`."""

    __slots__ = ("_fd", "path")

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_FILE_NAME)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LogLockedError(
                    f"{self.path} is locked: another writer has this log open"
                ) from None
            raise
        # The pid is for humans debugging a refused open; nothing reads it back.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
