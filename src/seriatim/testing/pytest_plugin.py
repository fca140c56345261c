"""pytest plugin (entry point ``pytest11``): the ``seriatim_broker`` fixture.

``seriatim_broker`` is a running in-process broker per test (function scope) with its data
dir under the test's ``tmp_path``; it is stopped after the test. To change its configuration,
override the ``seriatim_broker_config`` fixture in a test module or conftest::

    @pytest.fixture
    def seriatim_broker_config():
        return {"num.partitions": 3, "log.segment.bytes": 1024}

``seriatim_app_factory`` (default None: the real broker) swaps the app behind the sockets.

This module is imported by every pytest run in an environment where seriatim is installed, so
it imports nothing heavy at module level.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from seriatim.server.app import AppFactory
    from seriatim.testing.runner import InProcessBroker


@pytest.fixture
def seriatim_broker_config() -> dict[str, Any]:
    """Dotted broker config keys for ``seriatim_broker``; override to change them."""
    return {}


@pytest.fixture
def seriatim_app_factory() -> AppFactory | None:
    """The app ``seriatim_broker`` serves; None means the real broker. Override it to put
    another :class:`~seriatim.server.app.BrokerApp` behind the same sockets."""
    return None


@pytest.fixture
def seriatim_broker(
    tmp_path: Path,
    seriatim_broker_config: dict[str, Any],
    seriatim_app_factory: AppFactory | None,
) -> Iterator[InProcessBroker]:
    """A running broker on 127.0.0.1 (ephemeral port); ``.bootstrap`` for clients."""
    from seriatim.testing.runner import InProcessBroker

    with InProcessBroker(
        tmp_path / "seriatim-data",
        config=seriatim_broker_config,
        app_factory=seriatim_app_factory,
    ) as b:
        yield b
