"""An in-process broker for tests: real sockets, its own event loop, a temporary data dir.

Theory of operation
-------------------
:class:`InProcessBroker` builds a :class:`~seriatim.config.BrokerConfig` from test
defaults (an ephemeral port on 127.0.0.1, ``group.initial.rebalance.delay.ms=0`` as Kafka's own
test harness does, the data dir) plus the caller's overrides, and runs the server on a
:class:`~seriatim.server.threaded.BackgroundServer`: an event loop in a background thread, so
synchronous Kafka clients in the test thread can talk to it. The environment is not read: a
test's broker does not change with the developer's ``SERIATIM_*`` variables.

:meth:`InProcessBroker.restart` stops the server (gracefully: the broker writes its
clean-shutdown marker) and starts a new one with the same resolved config: the same port and
the same data dir, so clients reconnect to the same address and find their data.
:meth:`InProcessBroker.close` (or leaving the ``with`` block) stops it and removes the
temporary directory it created; nothing it started outlives it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.config import BrokerConfig, _to_str
from seriatim.server.app import AppFactory, BrokerApp, broker_app_factory
from seriatim.server.threaded import BackgroundServer

if TYPE_CHECKING:
    from seriatim.storage.cleaner import CleanStats

T = TypeVar("T")

#: What a test broker uses unless overridden.
TEST_DEFAULTS: dict[str, str] = {
    "listeners": "PLAINTEXT://127.0.0.1:0",
    # Consumer groups form at once instead of after Kafka's 3 s initial rebalance delay.
    "group.initial.rebalance.delay.ms": "0",
}


class InProcessBroker:
    """A broker for one test. Use as a context manager, or call start() and close()."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        tmp_dir: str | Path | None = None,
        *,
        app_factory: AppFactory | None = None,
        clock: Clock | None = None,
        config: Mapping[str, Any] | None = None,
        shutdown_timeout_s: float = 5.0,
        **overrides: Any,
    ) -> None:
        """``config`` takes dotted keys (``{"log.segment.bytes": 1024}``); ``overrides`` the
        same with underscores (``log_segment_bytes=1024``). ``tmp_dir`` is used as the data
        dir (kept afterwards); without it a temporary one is made and removed at close."""
        self._owned_dir: Path | None = None
        if tmp_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="seriatim-test-"))
            self.data_dir = self._owned_dir
        else:
            self.data_dir = Path(tmp_dir)
        props = dict(TEST_DEFAULTS)
        props["log.dirs"] = str(self.data_dir)
        props.update({key: _to_str(value) for key, value in (config or {}).items()})
        props.update({key.replace("_", "."): _to_str(value) for key, value in overrides.items()})
        # Validate now, in the test's thread, so a bad override fails with a clear error.
        self._config = BrokerConfig.load(env={}, overrides=props)
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._app_factory = app_factory or broker_app_factory(self.clock)
        self._shutdown_timeout_s = shutdown_timeout_s
        self._bg: BackgroundServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> InProcessBroker:
        if self._bg is not None:
            raise RuntimeError("the broker is already running")
        bg = BackgroundServer(
            self._config, self._app_factory, shutdown_timeout_s=self._shutdown_timeout_s
        )
        bg.start()
        self._bg = bg
        self._config = bg.config  # port 0 resolved: a restart binds the same port
        return self

    def stop(self) -> None:
        """Graceful stop; the data dir is kept (see :meth:`restart`). Idempotent."""
        bg, self._bg = self._bg, None
        if bg is not None:
            bg.stop()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data dir."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop, and remove the data dir if this broker created it."""
        try:
            self.stop()
        finally:
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
                self._owned_dir = None

    def __enter__(self) -> InProcessBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- access -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._bg is not None

    @property
    def config(self) -> BrokerConfig:
        return self._config

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return self._config.bootstrap

    @property
    def port(self) -> int:
        return self._config.listeners[0].port

    @property
    def app(self) -> BrokerApp:
        return self._running().app

    def call(self, coro: Coroutine[Any, Any, T], *, timeout_s: float | None = 30.0) -> T:
        """Run ``coro`` on the broker's event loop (e.g. to inspect broker state safely)."""
        return self._running().call(coro, timeout_s=timeout_s)

    def compact(self, topic: str, *, now_ms: int | None = None) -> CleanStats:
        """Run the log cleaner on every partition of ``topic`` now and wait for it (tests are
        deterministic: the background cleaner only runs every log.cleaner.backoff.ms).
        ``now_ms`` (default: the broker's clock) decides delete.retention.ms and the lags."""
        app: Any = self.app
        stats: CleanStats = self.call(app.compact(topic, now_ms))
        return stats

    def apply_retention(self, topic: str | None = None, *, now_ms: int | None = None) -> int:
        """Apply retention.ms / retention.bytes now to ``topic`` (default: every topic);
        returns the number of segments deleted."""
        app: Any = self.app
        deleted: int = self.call(app.apply_retention(topic, now_ms))
        return deleted

    def _running(self) -> BackgroundServer:
        if self._bg is None:
            raise RuntimeError("the broker is not running")
        return self._bg

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<InProcessBroker {self.bootstrap} {state} data={self.data_dir}>"


def broker(
    tmp_dir: str | Path | None = None,
    *,
    app_factory: AppFactory | None = None,
    clock: Clock | None = None,
    config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> InProcessBroker:
    """``with seriatim.testing.broker(num_partitions=3) as b: ... b.bootstrap ...``"""
    return InProcessBroker(
        tmp_dir, app_factory=app_factory, clock=clock, config=config, **overrides
    )
