"""Time as a parameter: cores take a :class:`Clock` and never call ``time`` directly.

Tests use :class:`seriatim.testing.ManualClock`; production uses :class:`SystemClock`.
Units are in the names: ``monotonic_ns`` for durations and deadlines, ``wall_ms`` for the
timestamps Kafka stores (milliseconds since the epoch).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic_ns(self) -> int:
        """A clock that never goes backwards, for timeouts and intervals."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch, for record timestamps and retention."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


SYSTEM_CLOCK = SystemClock()
