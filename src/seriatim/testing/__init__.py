"""seriatim's public test toolkit: an in-process broker, its pytest fixture, ManualClock.

::

    import seriatim.testing

    with seriatim.testing.broker(num_partitions=3) as b:
        producer = confluent_kafka.Producer({"bootstrap.servers": b.bootstrap})
        ...
        b.restart()   # same port, same data dir

With pytest, the ``seriatim_broker`` fixture (plugin ``seriatim.testing.pytest_plugin``,
registered automatically) gives a running broker per test.

Nothing in ``src/seriatim`` imports this package. Names load lazily so that the pytest plugin
costs nothing in test runs that do not use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seriatim.testing.clock import ManualClock
    from seriatim.testing.runner import InProcessBroker, broker

__all__ = ["InProcessBroker", "ManualClock", "broker"]

_EXPORTS = {
    "ManualClock": "seriatim.testing.clock",
    "InProcessBroker": "seriatim.testing.runner",
    "broker": "seriatim.testing.runner",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'seriatim.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
