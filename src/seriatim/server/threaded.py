"""A :class:`~seriatim.server.app.Server` on its own event loop in a background thread.

Theory of operation
-------------------
Tests (and tools embedding a broker) often drive it with synchronous Kafka clients, which block
the calling thread; the broker therefore needs an event loop elsewhere. :class:`BackgroundServer`
creates a loop, runs it in one thread (``seriatim-server``), and submits ``Server.start()`` /
``Server.stop()`` to it with :func:`asyncio.run_coroutine_threadsafe`, blocking the caller until
each is done. :meth:`BackgroundServer.stop` leaves nothing behind: it stops the server, cancels
stray tasks, shuts down async generators and the default executor, stops the loop, joins the
thread and closes the loop. A failed start cleans up the same way before raising.

This module lives in ``server/`` because only ``server/`` starts threads (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from seriatim.config import BrokerConfig
from seriatim.server.app import (
    SHUTDOWN_TIMEOUT_S_DEFAULT,
    AppFactory,
    BrokerApp,
    Server,
    loop_factory,
)

T = TypeVar("T")

START_TIMEOUT_S = 30.0


class BackgroundServer:
    """Runs one :class:`Server` in a thread; ``start()`` and ``stop()`` block until done."""

    def __init__(
        self,
        config: BrokerConfig,
        app_factory: AppFactory,
        *,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S_DEFAULT,
        use_uvloop: bool | None = None,
    ) -> None:
        self._server = Server(config, app_factory, shutdown_timeout_s=shutdown_timeout_s)
        self._use_uvloop = use_uvloop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def server(self) -> Server:
        return self._server

    @property
    def config(self) -> BrokerConfig:
        return self._server.config

    @property
    def app(self) -> BrokerApp:
        return self._server.app

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def bootstrap(self) -> str:
        return self._server.bootstrap

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the server is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = loop_factory(self._use_uvloop)()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="seriatim-server", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            self.call(self._server.start(), timeout_s=timeout_s)
        except BaseException:
            self._shutdown_loop()
            raise

    def stop(self, timeout_s: float | None = None) -> None:
        """Graceful stop of the server, then the loop and the thread. Idempotent."""
        if self._thread is None:
            return
        try:
            self.call(self._server.stop(timeout_s), timeout_s=None)
        finally:
            self._shutdown_loop()

    def call(self, coro: Coroutine[Any, Any, T], *, timeout_s: float | None = 30.0) -> T:
        """Run ``coro`` on the server's loop and return its result (from another thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = None
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        # Whatever is still scheduled belongs to a server that has stopped: cancel it, so
        # nothing outlives the thread.
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
