"""Clocks: the node reads wall time (block time) and monotonic time (timers) only through a `Clock`.

The real node uses `SystemClock`; tests and the simulator inject a `FakeClock` they move by hand, so
no test needs to sleep to see block time advance.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "FakeClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the Unix epoch: what block times are made of."""
        ...

    def monotonic_s(self) -> float:
        """Seconds from an arbitrary origin that never go backwards: what timers are made of."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_s(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to. Wall and monotonic time advance together."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = now_ms
        self._monotonic_s = 0.0

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic_s(self) -> float:
        return self._monotonic_s

    def advance_ms(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self._now_ms += ms
        self._monotonic_s += ms / 1000

    def set_wall_ms(self, now_ms: int) -> None:
        """Jump the wall clock only (an NTP step, a skewed host); monotonic time is untouched."""
        self._now_ms = now_ms
