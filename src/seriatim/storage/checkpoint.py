"""Small checkpoint files, written atomically and checked with a CRC on read.

Theory of operation: a checkpoint (recovery point, log start offset, leader-epoch cache,
clean-shutdown marker) is a tiny text file::

    1                 <- format version
    2                 <- number of entries
    0 0               <- entries: space-separated integers, the same arity on every line
    3 1200
    crc32c 1a2b3c4d   <- CRC-32C (hex) of every byte above this line

Writes follow Kafka's ``atomicMoveWithFallback``: write ``<name>.tmp``, fsync it, rename over
the old file, fsync the directory. A reader therefore sees the old or the new file, never a
mix. A file that fails to parse or whose CRC does not match is reported as ``None`` together
with a reason, so the caller falls back to the safe choice (full recovery, rebuild) instead of
trusting it.
"""

from __future__ import annotations

import os

import crc32c

from seriatim.storage.fileops import REAL_FILE_OPS, FileOps, write_all

CHECKPOINT_VERSION = 1
MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024  # a leader-epoch file with ~1M epochs


class CheckpointError(ValueError):
    """A checkpoint file exists but is damaged; the message says how."""


def encode_checkpoint(entries: list[tuple[int, ...]]) -> bytes:
    lines = [str(CHECKPOINT_VERSION), str(len(entries))]
    lines.extend(" ".join(str(v) for v in entry) for entry in entries)
    body = ("\n".join(lines) + "\n").encode("ascii")
    return body + b"crc32c %08x\n" % crc32c.crc32c(body)


def decode_checkpoint(data: bytes, arity: int) -> list[tuple[int, ...]]:
    """Parse a checkpoint; raise :class:`CheckpointError` on any damage."""
    cut = data.rfind(b"crc32c ")
    if cut < 0 or not data.endswith(b"\n"):
        raise CheckpointError("missing CRC line")
    body, crc_line = data[:cut], data[cut:]
    try:
        expected = int(crc_line[7:].strip(), 16)
    except ValueError as exc:
        raise CheckpointError("unreadable CRC line") from exc
    if crc32c.crc32c(body) != expected:
        raise CheckpointError("CRC mismatch")
    lines = body.decode("ascii", "replace").splitlines()
    if len(lines) < 2 or lines[0] != str(CHECKPOINT_VERSION):
        raise CheckpointError(f"unknown version {lines[0] if lines else '?'}")
    try:
        count = int(lines[1])
        entries = [tuple(int(v) for v in line.split()) for line in lines[2:]]
    except ValueError as exc:
        raise CheckpointError("non-integer entry") from exc
    if count != len(entries) or any(len(e) != arity for e in entries):
        raise CheckpointError("entry count or arity mismatch")
    return entries


def read_checkpoint(path: str, arity: int) -> list[tuple[int, ...]] | None:
    """Entries of the checkpoint at ``path``; ``None`` if it does not exist.

    Raises :class:`CheckpointError` if it exists but is damaged.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CHECKPOINT_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError("file too large")
    return decode_checkpoint(data, arity)


def write_atomic(path: str, data: bytes, ops: FileOps = REAL_FILE_OPS) -> None:
    """tmp + fsync + rename + fsync(dir): the file holds the old or the new bytes."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(ops, fd, data)
        ops.fsync(fd)
    finally:
        os.close(fd)
    ops.replace(tmp, path)
    ops.fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_checkpoint(
    path: str, entries: list[tuple[int, ...]], ops: FileOps = REAL_FILE_OPS
) -> None:
    write_atomic(path, encode_checkpoint(entries), ops)
