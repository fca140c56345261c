"""A clock that moves only when a test says so (docs/architecture.md, rule 3).

Both readings start where the test puts them and advance together by :meth:`ManualClock.advance`.
The wall clock may also be set (even backwards, as an NTP step would) with
:meth:`ManualClock.set_wall_ms`; the monotonic clock never goes backwards. A lock makes it safe
to advance from a test thread while a broker thread reads it.
"""

from __future__ import annotations

import threading

#: 2023-11-14T22:13:20Z: a fixed, recognisable epoch for tests.
DEFAULT_WALL_MS = 1_700_000_000_000


class ManualClock:
    """Implements :class:`seriatim.clock.Clock`; time stands still until advanced."""

    __slots__ = ("_lock", "_monotonic_ns", "_wall_ms")

    def __init__(self, wall_ms: int = DEFAULT_WALL_MS, monotonic_ns: int = 0) -> None:
        self._lock = threading.Lock()
        self._wall_ms = wall_ms
        self._monotonic_ns = monotonic_ns

    def monotonic_ns(self) -> int:
        with self._lock:
            return self._monotonic_ns

    def wall_ms(self) -> int:
        with self._lock:
            return self._wall_ms

    def advance(self, ms: int) -> None:
        """Move both clocks forward by ``ms`` milliseconds."""
        if ms < 0:
            raise ValueError("a clock cannot advance by a negative amount; use set_wall_ms")
        with self._lock:
            self._wall_ms += ms
            self._monotonic_ns += ms * 1_000_000

    def set_wall_ms(self, wall_ms: int) -> None:
        """Set the wall clock (may go backwards); the monotonic clock is unchanged."""
        with self._lock:
            self._wall_ms = wall_ms

    def __repr__(self) -> str:
        return f"ManualClock(wall_ms={self._wall_ms}, monotonic_ns={self._monotonic_ns})"
