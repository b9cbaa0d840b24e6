"""Run the `hearth` command with its CPU time split into phases (a tool of profile_network.py):

    python -m tests.benchmarks.cpu_phases_node OUT -- node start --home DIR

Where cProfile (cprofile_node.py) counts calls exactly but charges each call its own large cost,
this measures the main thread's real CPU time (`time.thread_time`, system time included) at a few
dozen points, so the figures add up to what the process spent:
- every callback the event loop runs is a phase, named by what it runs: `task:` and the coroutine
  of the task it steps (`task:P2P._write_loop`), or `cb:` and the callback; a socket's readiness
  callback also names the socket (`cb:_SelectorSocketTransport._read_ready[rpc]`: reading an RPC
  client's connection, which includes aiohttp's parsing of what arrived; `[p2p-in]` and `[p2p-out]`:
  peer links this node accepted or dialled, by the ports in the node's config; `[unix]`: a worker's);
- inside them, the functions in PHASE_METHODS and each kind of peer frame (`msg:block`) are phases
  of their own, and their time is taken out of the phase that called them (exclusive times).

What no phase holds (`unattributed`): the loop's own polling between callbacks. Each point costs two
clock reads, a few µs per block and far less per transaction. SIGUSR1 takes a snapshot of the
totals (profile_network has the load generator send one as each step starts and one as it ends,
so start-up, catching up and what comes between and after the steps stay out); the totals and the snapshots go to OUT as JSON when the
command ends (a node ends cleanly on SIGTERM), and `phases_per_transfer` reads them.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import functools
import gc
import inspect
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.benchmarks.hearth_in_process import run_hearth, wrapper_main

__all__ = ["PHASE_METHODS", "PhaseClock", "callback_name", "listening_ports", "phases_per_transfer", "run_with_phases"]

PHASE_METHODS: dict[str, tuple[str, ...]] = {
    "consensus.node:Node": (
        "_after_commit", "_gossip_txs", "_receive_tx_hashes", "_receive_txs", "_unverified", "_admit_one", "_feed", "_perform",
        "_receive_consensus", "_send_own",
    ),
    "consensus.mempool:Mempool": ("add_prevalidated", "add_decoded", "update", "recheck_some", "reap"),
    "consensus.app_ledger:LedgerApp": ("validate_block", "propose_block", "decode", "apply_synced", "_commit"),
    "consensus.block_store:BlockStore": ("commit_records",),
    "consensus.block:Block": ("from_bytes", "build"),
    "consensus.signer:Signer": ("sign",),
    "consensus.signer_guard:FileSignerGuard": ("store",),
    "consensus.signer_guard:ConsensusWAL": ("append", "committed"),
    "consensus.types:Vote": ("is_signature_valid",),
    "consensus.types:Proposal": ("is_signed_by",),
    "consensus.p2p:P2P": ("broadcast", "send_frame", "_on_frame"),
    "ledger.ledger_db:LedgerDB": ("execute", "build", "commit", "_finish"),
    "consensus.verifier": ("_decoded", "trusted_tx"),
}
"""Where the phases inside the loop's callbacks are: module:class (or a module) and its functions,
class and static methods included. Synchronous functions only: a coroutine function's call only
makes the coroutine (it runs in the task's steps, which are phases already). A module's function
is replaced in that module, so it is timed where that module calls it by name."""


class PhaseClock:
    """Exclusive CPU time per phase: a phase's time less the time of the phases it called."""

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self.clock = clock
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.snapshots: list[dict[str, Any]] = []
        self.ports: dict[int, str] = {}
        """Listening port -> name, for naming the sockets' callbacks (`callback_name`)."""
        self._start = clock()
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

    def snapshot(self) -> None:
        """Record the totals so far (the phase under way counts from its end)."""
        self.snapshots.append({"total_s": self.clock() - self._start, "seconds": dict(self.seconds), "calls": dict(self.calls)})

    def install(self, methods: dict[str, tuple[str, ...]] = PHASE_METHODS, frames: bool = True) -> None:
        """Time every callback of the event loop, `methods`, and (`frames`) each kind of peer frame."""
        run = asyncio.events.Handle._run

        def timed_run(handle: asyncio.events.Handle) -> None:
            self.enter(callback_name(handle._callback, self.ports))  # type: ignore[attr-defined]
            try:
                run(handle)
            finally:
                self.leave()

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self._collection)
        for where, names in methods.items():
            module_name, _, class_name = where.partition(":")
            module = __import__(module_name, fromlist=["_"])
            owner = getattr(module, class_name) if class_name else module
            for name in names:
                label = f"{class_name or module_name.rsplit('.', 1)[-1]}.{name}"
                static = inspect.getattr_static(owner, name)
                if isinstance(static, classmethod):  # wrapped unbound, so the class it is called on stays `cls`
                    setattr(owner, name, classmethod(self.wrap(static.__func__, label)))
                elif isinstance(static, staticmethod):
                    setattr(owner, name, staticmethod(self.wrap(static.__func__, label)))
                else:
                    setattr(owner, name, self.wrap(getattr(owner, name), label))
        if not frames:
            return
        from consensus.node import Node

        handle_message = Node._handle_message

        def timed_message(node: Node, peer: Any, kind: str, payload: Any, from_wal: bool) -> None:
            self.enter(f"msg:{kind}" if isinstance(kind, str) else "msg:?")
            try:
                handle_message(node, peer, kind, payload, from_wal)
            finally:
                self.leave()

        Node._handle_message = timed_message  # type: ignore[method-assign]

    def _collection(self, phase: str, info: dict[str, Any]) -> None:
        """The cyclic collector's runs are phases of their own (`gc:gen0`...), out of whatever
        allocation set them off."""
        if phase == "start":
            self.enter(f"gc:gen{info.get('generation')}")
        elif self._stack and self._stack[-1][0].startswith("gc:"):
            self.leave()

    def to_json(self) -> dict[str, Any]:
        return {"total_s": self.clock() - self._start, "seconds": dict(self.seconds), "calls": dict(self.calls), "snapshots": self.snapshots}


def callback_name(callback: Any, ports: dict[int, str] | None = None) -> str:
    """`task:` and the coroutine a task step runs, or `cb:` and the callback's qualified name; a
    socket transport's callback adds which socket: the name of its local port in `ports` (a
    connection accepted on a listening port), `unix`, or else `out` (one this process dialled)."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return "task:" + getattr(coro, "__qualname__", type(coro).__name__)
    if isinstance(owner, asyncio.Future):
        return "future"
    function = callback.func if isinstance(callback, functools.partial) else callback
    name = "cb:" + getattr(function, "__qualname__", type(function).__name__)
    if isinstance(owner, asyncio.Transport):
        sockname = owner.get_extra_info("sockname")
        if not isinstance(sockname, tuple):
            name += "[unix]"
        else:
            name += f"[{(ports or {}).get(sockname[1], 'out')}]"
    return name


def listening_ports(args: list[str]) -> dict[int, str]:
    """The RPC's and the peer layer's ports of the node `hearth node start --home DIR` runs, by
    name (`rpc`, `p2p-in`); none for another command. Connections this node dialled (its outbound
    peer links) have other local ports and are named `out`."""
    if "--home" not in args[:-1]:
        return {}
    from consensus.config import NodeHome, parse_host_port

    config = NodeHome(Path(args[args.index("--home") + 1])).load_config()
    return {parse_host_port(config.rpc.listen)[1]: "rpc", parse_host_port(config.p2p.listen)[1]: "p2p-in"}


def run_with_phases(out: Path, args: list[str]) -> None:
    """`hearth ARGS` in this process with its phases timed (SIGUSR1: a snapshot); the result
    written to `out` however it ends."""
    phases = PhaseClock()
    phases.ports = listening_ports(args)
    phases.install()
    signal.signal(signal.SIGUSR1, lambda *_: phases.snapshot())
    try:
        run_hearth(args)
    finally:
        out.write_text(json.dumps(phases.to_json()))


def phases_per_transfer(path: Path, transfers: int, top: int = 40) -> dict[str, Any]:
    """From a result: the main thread's CPU µs per transfer in all, what no phase holds, and the
    `top` phases by their µs per transfer, each with its count of calls. With two snapshots or
    more, over the time between the last two (`window`: "snapshots"); else over the whole run."""
    data = json.loads(path.read_text())
    window = "whole run"
    total_s, seconds, calls = data["total_s"], data["seconds"], data["calls"]
    if len(data.get("snapshots", [])) >= 2:
        before, after = data["snapshots"][-2:]
        window = "snapshots"
        total_s = after["total_s"] - before["total_s"]
        seconds = {k: v - before["seconds"].get(k, 0.0) for k, v in after["seconds"].items()}
        calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    n = max(transfers, 1)
    rows = sorted(((k, v) for k, v in seconds.items() if calls[k] > 0), key=lambda item: -item[1])
    return {
        "window": window,
        "main_thread_us_per_transfer": round(total_s / n * 1e6, 1),
        "unattributed_us_per_transfer": round((total_s - sum(seconds.values())) / n * 1e6, 1),
        "phases": [[round(v / n * 1e6, 2), calls[k], k] for k, v in rows[:top]],
    }


if __name__ == "__main__":
    wrapper_main("tests.benchmarks.cpu_phases_node", run_with_phases)
