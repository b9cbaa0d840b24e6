"""Shared by node tests: polling with a deadline instead of sleeping, counting the event loop's turns,
and counting the refusals alive with the collector off."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger import Rejected


@contextmanager
def collector_off() -> Iterator[None]:
    """Meanwhile only reference counting frees objects: what a cycle keeps stays alive to be counted."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def live_refusals() -> int:
    """The `Rejected` objects alive (exceptions are tracked by the collector, so it lists them all)."""
    return sum(1 for o in gc.get_objects() if type(o) is Rejected)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


def poll_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition", interval_s: float = 0.1) -> None:
    """The blocking form, for tests that drive real processes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def free_ports(count: int) -> list[int]:
    """Ports free right now on loopback (held open together, so they are distinct)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LoopTurns:
    """`async with LoopTurns() as turns:` counts the event loop's turns meanwhile in `turns.count`
    (a task that adds one and yields, each turn), to show that long work left the loop its turns."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> "LoopTurns":
        self._task = asyncio.ensure_future(self._count())
        await asyncio.sleep(0)  # its first turn
        self.count = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

