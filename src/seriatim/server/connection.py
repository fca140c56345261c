"""One client connection: frames in, responses out, in order, with bounded memory.

Theory of operation
-------------------
:class:`Connection` is a raw :class:`asyncio.BufferedProtocol` (not a StreamReader, which
measured bimodal and slower on this class of machine). Its ``get_buffer`` / ``buffer_updated``
are the :class:`~seriatim.protocol.FrameDecoder`'s: the transport reads into the decoder's
memory, so a large request frame is written by the kernel straight into the buffer the handler
receives (no per-read ``bytes``, no join; see :mod:`seriatim.protocol.framing`). The complete
frames (``bytes``, or a read-only ``memoryview`` for a frame received in place) are appended to
a FIFO. One task per busy connection drains the FIFO: it awaits ``handler.handle(frame,
info)`` for one frame at a time and writes that response before starting the next frame. So
responses leave in request order (Kafka's guarantee per connection), while connections run
concurrently with each other.
The drain task exists only while there is work; an idle connection costs no task.

A handler that returns ``None`` owes no response (Produce with acks=0): nothing is written.

Bounded memory, in both directions:

* Reading pauses (``transport.pause_reading``) once more than :data:`MAX_QUEUED_REQUESTS`
  frames or :data:`MAX_QUEUED_BYTES` bytes wait in the FIFO, and resumes when the FIFO is
  half drained. Beyond that, TCP flow control pushes back on the client.
* Writing: when the transport's buffer passes its high-water mark asyncio calls
  ``pause_writing``; the drain task then waits for ``resume_writing`` before writing the next
  response. A client that does not read therefore stops the drain task, the FIFO fills,
  reading pauses: the server holds at most one FIFO plus one transport buffer per connection.

Errors: a :class:`~seriatim.protocol.ProtocolError` (bad frame size, undecodable request)
closes this connection only, with one log line. Any other exception out of the handler is a
bug: it is logged with its traceback and the connection is closed; other connections go on.

A peer's EOF closes the connection, as in Kafka; the handler of a request in progress sees
``info.closed`` turn True (a long-poll can stop waiting) and its response is discarded.

Idle connections (no bytes in or out and no request in progress for
``connections.max.idle.ms``) are closed, as Kafka does. The timer is re-armed lazily: one
``call_later`` per idle period, not one per read.

Slow requests (slowloris): once the first byte of a request frame has arrived, the whole frame
must arrive within ``connections.request.read.timeout.ms`` (seriatim's own key; Kafka has no
equivalent and relies on the idle timeout, which a trickle of bytes defeats), else the
connection is closed. Time spent with reading paused by us (back-pressure) does not count.
One timer per partial frame, armed lazily.

Connection limits are the owner's: :meth:`ConnectionOwner._connection_made` returns False
for a connection over ``max.connections`` / ``max.connections.per.ip``; it is closed at once.

Shutdown (:meth:`Connection.shutdown`): new frames are ignored, queued ones dropped (never
started, so never acknowledged: clients retry them), the request in progress finishes and its
response is written, then the transport is closed (which flushes it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from seriatim.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from seriatim.protocol.framing import Frame, FrameDecoder

log = logging.getLogger("seriatim.server")

#: Frames decoded but not yet handled, per connection, before reading pauses. Kafka reads one
#: request per connection at a time; a small pipeline lets a client's in-flight requests (the
#: Java producer sends up to 5, librdkafka more) arrive while earlier ones are handled.
MAX_QUEUED_REQUESTS = 32
#: Bytes of decoded frames waiting per connection before reading pauses.
MAX_QUEUED_BYTES = 16 * 1024 * 1024
#: After close(), how long a peer that does not read may keep our unsent bytes before abort.
CLOSE_GRACE_S = 5.0

Response = Sequence[bytes | memoryview]


@dataclass(slots=True, eq=False)
class ConnectionInfo:
    """What the handler may know about the connection a request came from.

    ``attributes`` is a scratch dict owned by the handler (e.g. the client's software name from
    ApiVersions); the server never reads it. ``closed`` turns True when the peer is gone, so a
    long-poll can give up early.
    """

    id: int
    peer_host: str
    peer_port: int
    local_host: str
    local_port: int
    listener: str  # the listener name, e.g. "PLAINTEXT"
    connected_ns: int  # time.monotonic_ns() at accept
    closed: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def peer(self) -> str:
        host = f"[{self.peer_host}]" if ":" in self.peer_host else self.peer_host
        return f"{host}:{self.peer_port}"


class RequestHandler(Protocol):
    """What the server calls for every request frame (the broker implements it).

    ``frame`` is one request without its 4-byte size prefix: ``bytes``, or a read-only
    ``memoryview`` of a buffer that is the frame's alone (never reused, so slices of it may be
    kept). Return the complete response bytes *including* the size prefix, as buffers for
    ``transport.writelines``; or ``None`` when no response is owed. Raise
    :class:`~seriatim.protocol.ProtocolError` to have the connection closed.
    """

    async def handle(self, frame: Frame, conn: ConnectionInfo) -> Response | None: ...


class ConnectionOwner(Protocol):
    """The part of the server a connection talks back to."""

    def _connection_made(self, conn: Connection) -> bool | None:
        """Count ``conn`` in; False when it is over a connection limit (it closes at once)."""
    def _connection_lost(self, conn: Connection) -> None: ...


_ids = itertools.count(1)


class Connection(asyncio.BufferedProtocol):
    """One accepted socket; created by the server's protocol factory."""

    def __init__(
        self,
        owner: ConnectionOwner,
        handler: RequestHandler,
        decoder: FrameDecoder,
        *,
        listener: str,
        idle_timeout_ms: int,
        read_timeout_ms: int = 0,
    ) -> None:
        self._owner = owner
        self._handler = handler
        self._decoder = decoder
        self._listener = listener
        self._idle_s = idle_timeout_ms / 1000 if idle_timeout_ms > 0 else 0.0
        self._read_timeout_s = read_timeout_ms / 1000 if read_timeout_ms > 0 else 0.0
        self._partial_since: float | None = None  # loop time the partial frame began
        self._read_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.info: ConnectionInfo | None = None
        self._queue: deque[Frame] = deque()
        self._queued_bytes = 0
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._task: asyncio.Task[None] | None = None  # the drain task, while there is work
        self._idle_handle: asyncio.TimerHandle | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self._last_active = self._loop.time()
        self._stopping = False
        self._closing = False
        self.lost: asyncio.Future[None] = self._loop.create_future()

    # --- asyncio.BufferedProtocol callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not isinstance.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        self.info = ConnectionInfo(
            id=next(_ids),
            peer_host=str(peer[0]),
            peer_port=int(peer[1]),
            local_host=str(local[0]),
            local_port=int(local[1]),
            listener=self._listener,
            connected_ns=time.monotonic_ns(),
        )
        if self._owner._connection_made(self) is False:
            self._closing = True
            transport.abort()  # over a connection limit: nothing to flush, free the fd now
            return
        if self._idle_s:
            self._idle_handle = self._loop.call_later(self._idle_s, self._idle_check)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Also after we decided to close: the decoder always has somewhere to put stray bytes.
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self._closing:  # bytes already in flight when we decided to close
            return
        now = self._last_active = self._loop.time()
        was_partial = self._decoder.buffered_bytes > 0
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        if self._read_timeout_s:
            if self._decoder.buffered_bytes == 0:
                self._partial_since = None
            elif frames or not was_partial:  # a new partial frame began in this read
                self._partial_since = now
                if self._read_handle is None:
                    self._read_handle = self._loop.call_later(
                        self._read_timeout_s, self._read_timeout_check
                    )
        if not frames or self._stopping:
            return
        queue = self._queue
        for frame in frames:
            queue.append(frame)
            self._queued_bytes += len(frame)
        if not self._reading_paused and (
            len(queue) > MAX_QUEUED_REQUESTS or self._queued_bytes > MAX_QUEUED_BYTES
        ):
            self._reading_paused = True
            self._transport_or_fail().pause_reading()
        if self._task is None:
            self._task = self._loop.create_task(self._drain())

    def eof_received(self) -> bool:
        # As Kafka does, a peer's EOF ends the connection: Kafka clients never half-close to
        # wait for answers, and closing now tells a waiting long-poll (info.closed) at once.
        return False

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.info is not None:
            self.info.closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._wake_writer()
        for handle in (self._idle_handle, self._abort_handle, self._read_handle):
            if handle is not None:
                handle.cancel()
        self._idle_handle = self._abort_handle = self._read_handle = None
        if not self.lost.done():
            self.lost.set_result(None)
        self._owner._connection_lost(self)

    # --- the drain task --------------------------------------------------------------------

    async def _drain(self) -> None:
        queue = self._queue
        info = self.info
        assert info is not None
        try:
            while queue and not info.closed:
                frame = queue.popleft()
                self._queued_bytes -= len(frame)
                if self._reading_paused and (
                    len(queue) <= MAX_QUEUED_REQUESTS // 2
                    and self._queued_bytes <= MAX_QUEUED_BYTES // 2
                    and not self._stopping
                ):
                    self._reading_paused = False
                    self._transport_or_fail().resume_reading()
                response = await self._handler.handle(frame, info)
                if response is None or info.closed:
                    continue
                if self._writable is not None:
                    await self._writable  # the peer is slow to read: hold the next response
                    if info.closed:
                        break
                self._transport_or_fail().writelines(response)
                self._last_active = self._loop.time()
        except ProtocolError as exc:
            self._protocol_error(exc)
        except Exception:
            log.exception(
                "connection %d from %s: request handler failed; closing the connection",
                info.id,
                info.peer,
            )
            self._close()
        finally:
            self._task = None
            if self._stopping:
                self._close()

    def _wake_writer(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- closing ---------------------------------------------------------------------------

    @property
    def queued_requests(self) -> int:
        """Frames received and waiting behind the request in progress."""
        return len(self._queue)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The request in progress (with its queue), if any."""
        return self._task

    def shutdown(self) -> None:
        """Graceful stop: finish the request in progress, drop the queue, then close."""
        self._stopping = True
        self._queue.clear()
        self._queued_bytes = 0
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        if self._task is None:
            self._close()

    def abort(self) -> None:
        """Close now, discarding unsent data (shutdown timed out)."""
        if self._transport is not None:
            self._transport.abort()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # flushes what was written, then connection_lost
            # A peer that never reads would keep the flush (and the socket) forever.
            self._abort_handle = self._loop.call_later(CLOSE_GRACE_S, self.abort)

    def _protocol_error(self, exc: ProtocolError) -> None:
        info = self.info
        log.warning(
            "closing connection %d from %s: protocol error: %s",
            info.id if info else -1,
            info.peer if info else "?",
            exc,
        )
        self._queue.clear()
        self._queued_bytes = 0
        self._close()

    def _read_timeout_check(self) -> None:
        self._read_handle = None
        if self.info is None or self.info.closed or self._closing:
            return
        since = self._partial_since
        if since is None:
            return  # the frame completed; the next partial frame re-arms the timer
        now = self._loop.time()
        if self._reading_paused:
            # We stopped reading, not the peer: the frame's clock restarts when we resume.
            self._partial_since = since = now
        elif now - since >= self._read_timeout_s:
            log.info(
                "closing connection %d from %s: a request frame did not complete within "
                "%d ms (connections.request.read.timeout.ms; %d bytes of it received)",
                self.info.id,
                self.info.peer,
                int(self._read_timeout_s * 1000),
                self._decoder.buffered_bytes,
            )
            self._queue.clear()
            self._queued_bytes = 0
            self._close()
            return
        self._read_handle = self._loop.call_later(
            since + self._read_timeout_s - now, self._read_timeout_check
        )

    def _idle_check(self) -> None:
        self._idle_handle = None
        if self.info is None or self.info.closed:
            return
        if self._task is not None:
            # A request in progress (e.g. a long-poll fetch) is activity.
            delay = self._idle_s
        else:
            idle_for = self._loop.time() - self._last_active
            if idle_for >= self._idle_s:
                log.info(
                    "closing connection %d from %s: idle for more than %d ms "
                    "(connections.max.idle.ms)",
                    self.info.id,
                    self.info.peer,
                    int(self._idle_s * 1000),
                )
                self._close()
                return
            delay = self._idle_s - idle_for
        self._idle_handle = self._loop.call_later(delay, self._idle_check)

    def _transport_or_fail(self) -> asyncio.Transport:
        transport = self._transport
        assert transport is not None, "connection used before connection_made"
        return transport
