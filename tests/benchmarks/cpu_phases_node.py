"""Run the `hearth` command with its CPU time split into phases (a tool of profile_network.py):

    python -m tests.benchmarks.cpu_phases_node OUT -- node start --home DIR

Where cProfile (cprofile_node.py) counts calls exactly but charges each call its own large cost,
this measures the main thread's real CPU time (`time.thread_time`, system time included) at a few
dozen points, so the figures add up to what the process spent:
- every callback the event loop runs is a phase, named by what it runs: `task:` and the coroutine
  of the task it steps (`task:P2P._write_loop`), or `cb:` and the callback (`cb:_SelectorSocketTransport._read_ready`,
  reading a socket, is aiohttp's parsing of what arrived);
- inside them, the methods in PHASE_METHODS and each kind of peer frame (`msg:block`) are phases
  of their own, and their time is taken out of the phase that called them (exclusive times).

What no phase holds (`unattributed`): the loop's own polling between callbacks, start-up, shutdown.
Each point costs two clock reads, a few µs per block and far less per transaction. The result goes
to OUT as JSON when the command ends (a node ends cleanly on SIGTERM); `phases_per_transfer` reads it.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import functools
import json
import runpy
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PHASE_METHODS", "PhaseClock", "callback_name", "phases_per_transfer", "run_with_phases"]

PHASE_METHODS: dict[str, tuple[str, ...]] = {
    "consensus.node:Node": (
        "_after_commit", "_gossip_txs", "_receive_tx_hashes", "_receive_txs", "_unverified", "_admit_one", "_feed", "_perform",
    ),
    "consensus.mempool:Mempool": ("add_prevalidated", "add_decoded", "update", "recheck_some", "reap"),
    "consensus.app_ledger:LedgerApp": ("validate_block", "propose_block", "decode", "apply_synced", "_commit"),
    "consensus.block_store:BlockStore": ("commit_records",),
    "ledger.ledger_db:LedgerDB": ("execute", "build", "commit", "_finish"),
    "consensus.verifier": ("_decoded",),
}
"""Where the phases inside the loop's callbacks are: module:class (or a module) and its functions.
Synchronous functions only: a coroutine function's call only makes the coroutine (it runs in the
task's steps, which are phases already)."""


class PhaseClock:
    """Exclusive CPU time per phase: a phase's time less the time of the phases it called."""

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self.clock = clock
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[list[Any]] = []  # [name, start, time of the phases inside]

    def enter(self, name: str) -> None:
        self._stack.append([name, self.clock(), 0.0])

    def leave(self) -> None:
        name, start, inner = self._stack.pop()
        elapsed = self.clock() - start
        self.seconds[name] += elapsed - inner
        self.calls[name] += 1
        if self._stack:
            self._stack[-1][2] += elapsed

    def wrap(self, function: Callable[..., Any], name: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def phase(*args: Any, **kwargs: Any) -> Any:
            self.enter(name)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return phase

    def install(self) -> None:
        """Time every callback of the event loop, and the PHASE_METHODS."""
        run = asyncio.events.Handle._run

        def timed_run(handle: asyncio.events.Handle) -> None:
            self.enter(callback_name(handle._callback))  # type: ignore[attr-defined]
            try:
                run(handle)
            finally:
                self.leave()

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        for where, names in PHASE_METHODS.items():
            module_name, _, class_name = where.partition(":")
            module = __import__(module_name, fromlist=["_"])
            owner = getattr(module, class_name) if class_name else module
            for name in names:
                setattr(owner, name, self.wrap(getattr(owner, name), f"{class_name or module_name.rsplit('.', 1)[-1]}.{name}"))
        from consensus.node import Node

        handle_message = Node._handle_message

        def timed_message(node: Node, peer: Any, kind: str, payload: Any, from_wal: bool) -> None:
            self.enter(f"msg:{kind}" if isinstance(kind, str) else "msg:?")
            try:
                handle_message(node, peer, kind, payload, from_wal)
            finally:
                self.leave()

        Node._handle_message = timed_message  # type: ignore[method-assign]

    def to_json(self, total_s: float) -> dict[str, Any]:
        return {"total_s": total_s, "seconds": dict(self.seconds), "calls": dict(self.calls)}


def callback_name(callback: Any) -> str:
    """`task:` and the coroutine a task step runs, or `cb:` and the callback's qualified name."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return "task:" + getattr(coro, "__qualname__", type(coro).__name__)
    if isinstance(owner, asyncio.Future):
        return "future"
    function = callback.func if isinstance(callback, functools.partial) else callback
    return "cb:" + getattr(function, "__qualname__", type(function).__name__)


def run_with_phases(out: Path, args: list[str]) -> None:
    """`hearth ARGS` in this process with its phases timed; the result written to `out` however it ends."""
    phases = PhaseClock()
    phases.install()
    sys.argv = ["hearth", *args]
    start = phases.clock()
    try:
        runpy.run_module("cli.main", run_name="__main__")
    except SystemExit:
        pass
    finally:
        out.write_text(json.dumps(phases.to_json(phases.clock() - start)))


def phases_per_transfer(path: Path, transfers: int, top: int = 40) -> dict[str, Any]:
    """From a result: the main thread's CPU µs per transfer in all, what no phase holds, and the
    `top` phases by their µs per transfer, each with its count of calls."""
    data = json.loads(path.read_text())
    n = max(transfers, 1)
    rows = sorted(data["seconds"].items(), key=lambda item: -item[1])
    return {
        "main_thread_us_per_transfer": round(data["total_s"] / n * 1e6, 1),
        "unattributed_us_per_transfer": round((data["total_s"] - sum(data["seconds"].values())) / n * 1e6, 1),
        "phases": [[round(seconds / n * 1e6, 2), data["calls"][name], name] for name, seconds in rows[:top]],
    }


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) < 2 or arguments[1] != "--":
        raise SystemExit("usage: python -m tests.benchmarks.cpu_phases_node OUT -- HEARTH-ARGS...")
    run_with_phases(Path(arguments[0]), arguments[2:])
