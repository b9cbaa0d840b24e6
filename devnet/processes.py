"""Validator processes of a local devnet: start, stop, kill, wait for blocks, cut and heal links.

Each validator is its own `hearth node start --home HOME` process in its own session (so a Ctrl-C
in the terminal reaches `hearth devnet up` alone, which then stops every validator in order). A pid
read from devnet.json is only signalled after checking (in /proc, or with ps where there is none)
that it is still that validator's node (its command line names its home), so a recycled pid is
never hit. Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cli.rpc_client import RpcClient, RpcClientError
from devnet.manifest import Manifest, ManifestError, ValidatorEntry

__all__ = [
    "DevnetTimeout",
    "NodeStatus",
    "height_of",
    "is_running",
    "kill_validator",
    "log_path",
    "log_tail",
    "node_status",
    "partition_plan",
    "poll_until",
    "rpc",
    "set_partition",
    "signal_stop",
    "start_validator",
    "stop_validator",
    "wait_for_height",
]

STOP_TIMEOUT_S = 10.0
"""A validator given SIGTERM that has not exited by then gets SIGKILL."""
RPC_TIMEOUT_S = 1.0
POLL_INTERVAL_S = 0.1
ADMIN_TIMEOUT_S = 2.0

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes started by this process, kept so they are reaped (no zombies) and never garbage-collected running."""

HAVE_PROC = Path("/proc/self/stat").exists()

T = TypeVar("T")


class DevnetTimeout(TimeoutError):
    """A bounded wait ran out; the message says what was awaited."""


def poll_until(probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = POLL_INTERVAL_S) -> T:
    """Call `probe` until it returns something other than None or False; raise DevnetTimeout at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise DevnetTimeout(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


# processes ------------------------------------------------------------------------------------------------
def log_path(entry: ValidatorEntry) -> Path:
    return Path(entry.home) / "node.log"


def log_tail(entry: ValidatorEntry, lines: int = 5) -> str:
    """The last lines of the validator's log, for error messages."""
    try:
        with open(log_path(entry), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_validator(entry: ValidatorEntry, extra_args: Iterable[str] = ()) -> int:
    """Start the validator's node in the background, its output appended to HOME/node.log; its pid."""
    with open(log_path(entry), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "node", "start", "--home", entry.home, *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _children[process.pid] = process
    return process.pid


def is_running(entry: ValidatorEntry) -> bool:
    """The manifest's pid is alive and is this validator's node (not a recycled pid, not a zombie)."""
    pid = entry.pid
    if pid is None:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            # Our own child, not reaped, so the pid is still its own. Its args are the answer: /proc's
            # command line is empty for a moment while the child is still inside execve, after Popen returns.
            return _is_node_command(" ".join(map(str, child.args)), entry.home)
        del _children[pid]  # reaped now: /proc (or ps) has no such pid any more
    info = _process_info(pid)
    if info is None:
        return False
    state, command = info
    if state.startswith("Z"):
        _reap(pid)
        return False
    return _is_node_command(command, entry.home)


def _is_node_command(command: str, home: str) -> bool:
    return f" node start --home {home} " in f" {command} "


def _process_info(pid: int) -> tuple[str, str] | None:
    """(state letter, command line joined by spaces) of a live pid, or None. /proc on Linux, else ps (macOS)."""
    if HAVE_PROC:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").replace("\0", " ")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return state, command
    try:
        out = subprocess.run(["ps", "-ww", "-p", str(pid), "-o", "stat=", "-o", "command="], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    state, _, command = out.strip().partition(" ")
    return (state, command.strip()) if state else None


def _reap(pid: int) -> None:
    """Collect an exited child of this process; for any other process this does nothing."""
    child = _children.pop(pid, None)
    if child is not None:
        child.poll()
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(entry: ValidatorEntry, sig: signal.Signals) -> bool:
    if not is_running(entry):
        return False
    assert entry.pid is not None
    try:
        os.kill(entry.pid, sig)
    except ProcessLookupError:
        return False
    return True


def signal_stop(entry: ValidatorEntry) -> bool:
    """Send SIGTERM without waiting (to stop several at once); False if it was not running."""
    return _signal(entry, signal.SIGTERM)


def stop_validator(entry: ValidatorEntry, timeout_s: float = STOP_TIMEOUT_S, signalled: bool = False) -> None:
    """SIGTERM (the node stops cleanly: links closed, store closed), then SIGKILL after `timeout_s`.
    `signalled`: SIGTERM was sent already (by `signal_stop`); only wait."""
    if not is_running(entry):
        return
    if not signalled:
        signal_stop(entry)
    try:
        poll_until(lambda: not is_running(entry), timeout_s, f"{entry.name} to stop")
    except DevnetTimeout:
        kill_validator(entry)


def kill_validator(entry: ValidatorEntry, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGKILL: a crash, as far as the node can tell. Returns once the process is gone."""
    if _signal(entry, signal.SIGKILL):
        poll_until(lambda: not is_running(entry), timeout_s, f"{entry.name} to die")


# RPC -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeStatus:
    name: str
    rpc_url: str
    running: bool
    height: int | None = None
    peers: int | None = None
    block_hash: str | None = None
    state_root: str | None = None
    error: str | None = None


def rpc(entry: ValidatorEntry, method: str, timeout_s: float = RPC_TIMEOUT_S, **params: Any) -> Any:
    return RpcClient(entry.rpc_url, timeout_s).call(method, **params)


def node_status(entry: ValidatorEntry, local: bool = True) -> NodeStatus:
    """What the validator's RPC says about it now; `running` is the process check on local devnets."""
    running = is_running(entry) if local else True
    try:
        s = rpc(entry, "status")
    except RpcClientError as exc:
        return NodeStatus(entry.name, entry.rpc_url, running and local, error=str(exc))
    return NodeStatus(entry.name, entry.rpc_url, True, s["height"], s["peers"], s.get("block_hash"), s["state_root"])


def height_of(entry: ValidatorEntry) -> int | None:
    try:
        return int(rpc(entry, "status")["height"])
    except (RpcClientError, KeyError, TypeError, ValueError):
        return None


def wait_for_height(entries: Iterable[ValidatorEntry], height: int, timeout_s: float) -> None:
    """Until every one of `entries` has committed `height`; DevnetTimeout names the laggards."""
    pending = list(entries)
    deadline = time.monotonic() + timeout_s
    while pending:
        pending = [e for e in pending if (height_of(e) or 0) < height]
        if not pending:
            return
        if time.monotonic() >= deadline:
            seen = ", ".join(f"{e.name} at {height_of(e)}" for e in pending)
            raise DevnetTimeout(f"timed out after {timeout_s:g} s waiting for height {height}: {seen}")
        time.sleep(POLL_INTERVAL_S)


# partitions ---------------------------------------------------------------------------------------------------
def partition_plan(manifest: Manifest, side: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each validator -> the validators it must refuse links with, cutting `side` off from the rest."""
    side_names = set(side)
    for name in side_names:
        manifest.validator(name)  # raises for an unknown name
    rest = [n for n in manifest.names if n not in side_names]
    if not side_names or not rest:
        raise ManifestError("a partition names at least one validator and leaves at least one out")
    return {n: tuple(sorted(rest)) if n in side_names else tuple(sorted(side_names)) for n in manifest.names}


def set_partition(entry: ValidatorEntry, blocked: Iterable[str]) -> dict[str, Any]:
    """Tell the validator's peer layer (devnet admin switch) which peers to refuse; its answer."""
    body = json.dumps({"blocked": sorted(blocked)}).encode()
    request = urllib.request.Request(
        f"http://{entry.p2p_address}/admin/partition", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=ADMIN_TIMEOUT_S) as response:
            return dict(json.loads(response.read(1 << 16)))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ManifestError(f"{entry.name}: the partition switch at {entry.p2p_address} did not answer: {exc}") from None
