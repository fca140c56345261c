"""Sans-I/O splitting of a byte stream into Kafka request frames.

Theory of operation
-------------------
Every Kafka request is ``int32 size`` followed by ``size`` bytes. :class:`FrameDecoder` is fed
whatever the transport delivered and returns the frames it completed, without the prefix.

* The declared size is checked the moment its 4 bytes are known, **before** anything is
  buffered for the frame: ``size < 8`` (no room for api_key, api_version and correlation_id)
  or ``size > max_frame_bytes`` raises :class:`FrameError` (rule 7, "validate at the gateway").
  After a ``FrameError`` the stream is out of sync, so the decoder stays broken: the
  connection must be closed.
* Memory follows the bytes actually received, never the declared size: a peer that announces
  100 MiB and sends nothing costs four bytes. Partial frames are kept as a list of chunks
  (zero-copy slices of the ``bytes`` the transport handed us) and joined once when complete,
  so a 100 MiB frame arriving in 64 KiB pieces is copied exactly once (no quadratic
  ``buf += data``), and a chunk holding many tiny frames is walked once with ``unpack_from``.
* A frame that arrives whole inside one chunk is returned as a ``bytes`` copy of just that
  range. Frames are always immutable (``bytes``), which kio's native reader requires.
"""

from __future__ import annotations

import struct

from seriatim.protocol.errors import FrameError

__all__ = ["MIN_FRAME_BYTES", "FrameDecoder"]

#: api_key (2) + api_version (2) + correlation_id (4): the smallest meaningful request.
MIN_FRAME_BYTES = 8

_SIZE = struct.Struct(">i")


class FrameDecoder:
    """Splits a byte stream into size-prefixed frames; one instance per connection."""

    __slots__ = ("_broken", "_chunks", "_have", "_head", "_max", "_need")

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < MIN_FRAME_BYTES:
            raise ValueError(f"max_frame_bytes must be >= {MIN_FRAME_BYTES}")
        self._max = max_frame_bytes
        self._head = b""  # 0..3 bytes of a size prefix split across feeds
        self._chunks: list[bytes | memoryview] = []  # pieces of the frame in progress
        self._have = 0  # bytes of the frame in progress held in _chunks
        self._need = -1  # declared size of the frame in progress, -1 when none
        self._broken = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for incomplete input (a partial prefix plus a partial frame)."""
        return len(self._head) + self._have

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data`` and return the frames it completed, in order.

        Raises :class:`FrameError` for a declared size outside ``[8, max_frame_bytes]``.
        """
        if self._broken:
            raise FrameError("frame decoder used after a framing error")
        # Slices of an immutable object can be kept without copying; a mutable buffer may be
        # reused by the caller after we return, so whatever we keep of it must be copied.
        keep_views = isinstance(data, bytes)
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        end = len(mv)
        pos = 0
        frames: list[bytes] = []
        while pos < end:
            if self._need >= 0:  # continue a partial frame
                take = min(self._need - self._have, end - pos)
                piece = mv[pos : pos + take]
                self._chunks.append(piece if keep_views else bytes(piece))
                self._have += take
                pos += take
                if self._have == self._need:
                    frames.append(b"".join(self._chunks))
                    self._chunks = []
                    self._have = 0
                    self._need = -1
                continue
            if self._head or end - pos < 4:  # the size prefix itself is split
                take = min(4 - len(self._head), end - pos)
                self._head += bytes(mv[pos : pos + take])
                pos += take
                if len(self._head) < 4:
                    break
                (size,) = _SIZE.unpack(self._head)
                self._head = b""
            else:
                (size,) = _SIZE.unpack_from(mv, pos)
                pos += 4
            self._check(size)
            if end - pos >= size:  # the whole frame is in this chunk: one small copy
                frames.append(bytes(mv[pos : pos + size]))
                pos += size
            else:
                self._need = size
        return frames

    def _check(self, size: int) -> None:
        if size < MIN_FRAME_BYTES:
            self._broken = True
            raise FrameError(
                f"declared frame size {size} is below the minimum of {MIN_FRAME_BYTES} bytes"
            )
        if size > self._max:
            self._broken = True
            raise FrameError(
                f"declared frame size {size} exceeds the limit of {self._max} bytes "
                "(socket.request.max.bytes)"
            )
