"""The listener: binds, accepts, owns every connection, and runs the broker app's lifecycle.

Theory of operation
-------------------
:class:`Server` owns the sockets; the broker owns the requests. They meet at two small
protocols: :class:`BrokerApp` (``start``/``stop`` plus a :class:`RequestHandler`) and
:class:`~seriatim.server.connection.ConnectionInfo`.

Start order (:meth:`Server.start`):

1. bind every listener *without listening* (``start_serving=False``), so port 0 resolves to a
   real port while clients are still refused;
2. put the bound ports into the config (:meth:`BrokerConfig.with_bound_ports`), so the broker
   advertises the real address;
3. create the app with that config and ``await app.start()`` (open storage, recover);
4. only then listen. A client never reaches a broker that is still recovering; it is refused
   and retries, as with Kafka.

Stop order (:meth:`Server.stop`): stop accepting; ask every connection to finish the request
in progress and drop its queue; wait for those (bounded by ``shutdown_timeout_s``), then cancel
what is left; let closing sockets flush (bounded), abort the rest; finally ``await app.stop()``,
when no handler can run any more, so the broker flushes and writes its clean-shutdown marker
with no request in flight.

Connection limits (Kafka's names): ``max.connections`` (all listeners together),
``max.connections.per.ip`` and ``max.connections.per.ip.overrides``. A connection accepted over
a limit is closed at once, before it reads a byte, with one (rate-limited) log line: the
excess costs an accept and a close, nothing else. (Kafka blocks the acceptor at
``max.connections`` instead; closing keeps the loop free and gives the client the same
"retry later".) Connections that are already open are never closed to make room.

:func:`run` is what ``seriatim serve`` runs: an event loop (uvloop when importable, unless
``SERIATIM_UVLOOP=0``), malloc thresholds that keep frame buffers' pages warm
(``server/memory.py``), the server, and SIGTERM/SIGINT handlers that start a graceful stop (a
second signal exits at once; the log recovers on the next start).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol

from seriatim.clock import Clock
from seriatim.config import BrokerConfig
from seriatim.protocol.framing import MIN_FRAME_BYTES, FrameDecoder
from seriatim.server.connection import Connection, RequestHandler
from seriatim.server.memory import tune_malloc

log = logging.getLogger("seriatim.server")

SHUTDOWN_TIMEOUT_S_DEFAULT = 10.0
#: How long closing sockets may take to flush their last responses during stop.
FLUSH_TIMEOUT_S = 2.0
LISTEN_BACKLOG = 1024


class BrokerApp(Protocol):
    """What ``seriatim serve`` runs: created by ``seriatim.broker.create_app(config, clock)``."""

    @property
    def handler(self) -> RequestHandler:
        """Called once per request frame; read once, after :meth:`start`."""
        ...

    async def start(self) -> None:
        """Open storage (recovering it); called before the server listens."""
        ...

    async def stop(self) -> None:
        """Flush and write the clean-shutdown marker; called after the last request ended."""
        ...


AppFactory = Callable[[BrokerConfig], BrokerApp]


def broker_app_factory(clock: Clock) -> AppFactory:
    """The real broker: ``seriatim.broker.create_app(config, clock)``, imported on first call
    (it pulls in storage and kio), from ``seriatim.broker`` or else ``seriatim.broker.app``."""

    def factory(config: BrokerConfig) -> BrokerApp:
        module = importlib.import_module("seriatim.broker")
        create_app = getattr(module, "create_app", None)
        if create_app is None:
            create_app = importlib.import_module("seriatim.broker.app").create_app
        app: BrokerApp = create_app(config, clock)
        return app

    return factory


class Server:
    """Listens on ``config.listeners`` and serves requests with the app ``app_factory`` makes.

    One instance serves once: ``start()`` then ``stop()``. To restart, make a new one with
    :attr:`config` (ports resolved) so it binds the same ports.
    """

    def __init__(
        self,
        config: BrokerConfig,
        app_factory: AppFactory,
        *,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S_DEFAULT,
    ) -> None:
        self._config = config
        self._app_factory = app_factory
        self._app: BrokerApp | None = None
        self._handler: RequestHandler | None = None
        self._shutdown_timeout_s = shutdown_timeout_s
        self._listeners: list[asyncio.Server] = []
        self._connections: set[Connection] = set()
        self._per_ip: dict[str, int] = {}  # open (counted) connections by peer host
        self._rejected = 0  # connections closed for a limit, since start
        self._rejected_logged_at = -1.0
        self._state = "new"  # new -> starting -> serving -> stopping -> stopped
        self._stopped: asyncio.Event | None = None

    # --- properties ---------------------------------------------------------------------------

    @property
    def config(self) -> BrokerConfig:
        """The config in use; after :meth:`start`, with port 0 replaced by the bound port."""
        return self._config

    @property
    def app(self) -> BrokerApp:
        if self._app is None:
            raise RuntimeError("the server has not been started")
        return self._app

    @property
    def port(self) -> int:
        """The bound port of the first listener."""
        return self._config.listeners[0].port

    @property
    def bootstrap(self) -> str:
        """``host:port`` to give clients (the first advertised listener)."""
        return self._config.bootstrap

    @property
    def connections(self) -> tuple[Connection, ...]:
        """The open connections (for diagnostics and tests; read on the server's loop)."""
        return tuple(self._connections)

    @property
    def rejected_connections(self) -> int:
        """Connections closed at accept because of a connection limit (diagnostics)."""
        return self._rejected

    @property
    def serving(self) -> bool:
        return self._state == "serving"

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"Server.start() called in state {self._state}")
        self._state = "starting"
        self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        app_started = False
        try:
            bound: dict[str, int] = {}
            for lis in self._config.listeners:
                srv = await loop.create_server(
                    functools.partial(self._make_connection, lis.name),
                    host=lis.host or None,
                    port=lis.port,
                    backlog=LISTEN_BACKLOG,
                    reuse_address=True,
                    start_serving=False,
                )
                self._listeners.append(srv)
                bound[lis.name] = srv.sockets[0].getsockname()[1]
            self._config = self._config.with_bound_ports(bound)
            app = self._app_factory(self._config)
            self._app = app
            await app.start()
            app_started = True
            self._handler = app.handler
            for srv in self._listeners:
                await srv.start_serving()
        except BaseException:
            for srv in self._listeners:
                srv.close()
            self._listeners.clear()
            self._state = "stopped"
            self._stopped.set()
            if app_started and self._app is not None:
                await self._app.stop()
            raise
        self._state = "serving"
        log.info(
            "serving %s (advertised %s)",
            ", ".join(str(lis) for lis in self._config.listeners),
            ", ".join(str(lis) for lis in self._config.advertised_listeners),
        )

    async def stop(self, timeout_s: float | None = None) -> None:
        """Graceful stop; returns when sockets are closed and ``app.stop()`` has returned."""
        if self._state in ("stopping", "stopped"):
            if self._stopped is not None:
                await self._stopped.wait()
            return
        if self._state == "new":
            self._state = "stopped"
            return
        self._state = "stopping"
        assert self._stopped is not None
        try:
            await self._close_connections(
                self._shutdown_timeout_s if timeout_s is None else timeout_s
            )
        finally:
            try:
                if self._app is not None:
                    await self._app.stop()
            finally:
                self._state = "stopped"
                self._stopped.set()
                log.info("stopped")

    async def wait_stopped(self) -> None:
        if self._stopped is not None:
            await self._stopped.wait()

    async def _close_connections(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for srv in self._listeners:
            srv.close()  # stop accepting
        conns = list(self._connections)
        for conn in conns:
            conn.shutdown()
        tasks = [conn.task for conn in conns if conn.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            if pending:
                log.warning(
                    "%d request(s) still running after %.1f s; cancelling them",
                    len(pending),
                    timeout_s,
                )
                for task in pending:
                    task.cancel()
                # A handler that swallows cancellation must not hang the stop forever.
                await asyncio.wait(pending, timeout=FLUSH_TIMEOUT_S)
        lost = [conn.lost for conn in conns if not conn.lost.done()]
        if lost:
            flush_s = min(FLUSH_TIMEOUT_S, max(0.05, deadline - loop.time()))
            await asyncio.wait(lost, timeout=flush_s)
            for conn in conns:
                if not conn.lost.done():
                    conn.abort()
            await asyncio.wait(lost, timeout=FLUSH_TIMEOUT_S)
        for srv in self._listeners:
            await srv.wait_closed()
        self._listeners.clear()

    # --- connections ---------------------------------------------------------------------------

    def _make_connection(self, listener: str) -> Connection:
        handler = self._handler
        assert handler is not None, "accepting before the app started"
        return Connection(
            self,
            handler,
            FrameDecoder(max(MIN_FRAME_BYTES, self._config.socket_request_max_bytes)),
            listener=listener,
            idle_timeout_ms=self._config.connections_max_idle_ms,
            read_timeout_ms=self._config.connections_request_read_timeout_ms,
        )

    def _connection_made(self, conn: Connection) -> bool:
        """Count ``conn`` in; False (and the connection must close) when over a limit."""
        if self._state != "serving":  # accepted in the instant before close(): refuse
            self._connections.add(conn)
            conn.shutdown()
            return True
        host = conn.info.peer_host if conn.info is not None else "?"
        cfg = self._config
        limit = cfg.max_connections_per_ip_overrides.get(host, cfg.max_connections_per_ip)
        open_here = self._per_ip.get(host, 0)
        if len(self._connections) >= cfg.max_connections:
            self._reject(conn, f"max.connections={cfg.max_connections} reached")
            return False
        if open_here >= limit:
            self._reject(conn, f"max.connections.per.ip={limit} reached for {host}")
            return False
        self._connections.add(conn)
        self._per_ip[host] = open_here + 1
        return True

    def _reject(self, conn: Connection, why: str) -> None:
        self._rejected += 1
        now = asyncio.get_running_loop().time()
        if now - self._rejected_logged_at >= 1.0:  # a flood must not flood the log too
            self._rejected_logged_at = now
            log.warning(
                "closing new connection from %s: %s (%d refused so far)",
                conn.info.peer if conn.info is not None else "?",
                why,
                self._rejected,
            )

    def _connection_lost(self, conn: Connection) -> None:
        if conn not in self._connections:
            return  # refused at accept: never counted
        self._connections.discard(conn)
        host = conn.info.peer_host if conn.info is not None else "?"
        left = self._per_ip.get(host, 0) - 1
        if left > 0:
            self._per_ip[host] = left
        else:
            self._per_ip.pop(host, None)


# --- the process runtime ------------------------------------------------------------------------


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when importable and not disabled (``SERIATIM_UVLOOP=0``), else asyncio's."""
    if use_uvloop is None:
        use_uvloop = os.environ.get("SERIATIM_UVLOOP", "1").strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


def run(
    config: BrokerConfig,
    app_factory: AppFactory,
    *,
    on_ready: Callable[[Server], None] | None = None,
    use_uvloop: bool | None = None,
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S_DEFAULT,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully. Blocks; main thread only."""
    tune_malloc()  # see server/memory.py: warm pages for the per-frame buffers
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        runner.run(_serve(config, app_factory, on_ready, shutdown_timeout_s))


async def _serve(
    config: BrokerConfig,
    app_factory: AppFactory,
    on_ready: Callable[[Server], None] | None,
    shutdown_timeout_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signame: str) -> None:
        if stop.is_set():
            log.error("second %s: exiting now, without a clean shutdown", signame)
            os._exit(1)
        log.info("%s received: stopping (send it again to exit at once)", signame)
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig.name)
    server = Server(config, app_factory, shutdown_timeout_s=shutdown_timeout_s)
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
    finally:
        await server.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)
