"""The only asyncio/socket layer: typed config, listener, connections, signals, threads.

``config`` (no asyncio) is cheap to import; ``app`` (the :class:`Server` and :func:`run`),
``connection`` and ``threaded`` load on first use, so ``seriatim serve --help`` stays fast.

Public names: :class:`BrokerConfig`, :class:`ConfigSource`, :class:`Listener`,
:class:`Server`, :class:`BrokerApp`, :class:`RequestHandler`, :class:`ConnectionInfo`,
:class:`BackgroundServer`, :func:`run`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seriatim.config import BrokerConfig, ConfigEntry, ConfigSource, Listener
    from seriatim.server.app import AppFactory, BrokerApp, Server, run
    from seriatim.server.connection import ConnectionInfo, RequestHandler
    from seriatim.server.threaded import BackgroundServer

_EXPORTS = {
    "AppFactory": "seriatim.server.app",
    "BrokerApp": "seriatim.server.app",
    "Server": "seriatim.server.app",
    "run": "seriatim.server.app",
    "BrokerConfig": "seriatim.config",
    "ConfigEntry": "seriatim.config",
    "ConfigSource": "seriatim.config",
    "Listener": "seriatim.config",
    "ConnectionInfo": "seriatim.server.connection",
    "RequestHandler": "seriatim.server.connection",
    "BackgroundServer": "seriatim.server.threaded",
}

__all__ = [
    "AppFactory",
    "BackgroundServer",
    "BrokerApp",
    "BrokerConfig",
    "ConfigEntry",
    "ConfigSource",
    "ConnectionInfo",
    "Listener",
    "RequestHandler",
    "Server",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'seriatim.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
