"""Real `hearth node start` processes on loopback, for tests: make homes, start, kill, ask over RPC.

Every process is started by `Network.start` and ended by `Network.close` (SIGKILL if SIGTERM is not
enough), which the `network` fixture calls in a finally, so no test leaves a process behind.
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
from pathlib import Path
from typing import Any

from consensus.config import ConsensusConfig, DevnetConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from ledger import Genesis
from ledger.crypto import Keypair
from tests.ledger.helpers import make_genesis
from tests.node.helpers import free_ports, poll_until

REPO_ROOT = Path(__file__).resolve().parents[2]
STAKE = 100 * 10**6


def validator_key(i: int) -> Keypair:
    return Keypair.from_seed((1000 + i).to_bytes(32, "big"))


class Network:
    def __init__(self, root: Path, size: int, consensus: ConsensusConfig | None = None, full_nodes: int = 0) -> None:
        """`size` validators v0..v{size-1}, then `full_nodes` nodes whose keys are in no validator
        set (they dial the validators; the validators do not list them)."""
        self.root = root
        self.size = size
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts: dict[int, int] = {}
        ports = free_ports(2 * (size + full_nodes))
        self.p2p_ports, self.rpc_ports = ports[0::2], ports[1::2]
        document = dict(make_genesis({1: 10**12, 2: 10**12}).document)
        document["genesis_time_ms"] = int(time.time() * 1000)
        document["validators"] = [
            {"address": validator_key(i).public_key.hex(), "name": f"v{i}", "stake": STAKE} for i in range(size)
        ]
        document["total_supply"] += STAKE * size
        genesis = Genesis.from_document(document)
        for i in range(size + full_nodes):
            home = self.home(i)
            home.write_key(validator_key(i))
            peers = tuple(
                f"{validator_key(j).public_key.hex()}@127.0.0.1:{self.p2p_ports[j]}" for j in range(size) if j != i
            )
            home.write_config(
                NodeConfig(
                    moniker=f"v{i}",
                    p2p=P2PConfig(listen=f"127.0.0.1:{self.p2p_ports[i]}", peers=peers),
                    rpc=RPCConfig(listen=f"127.0.0.1:{self.rpc_ports[i]}"),
                    consensus=consensus or ConsensusConfig(),
                    devnet=DevnetConfig(admin=True, check_recorded_effects=True),
                )
            )
            home.genesis_path.write_text(json.dumps(genesis.document))

    def home(self, i: int) -> NodeHome:
        return NodeHome(self.root / f"v{i}")

    def log_path(self, i: int) -> Path:
        return self.root / f"v{i}.{self.starts.get(i, 0)}.log"

    # processes -----------------------------------------------------------------------------------------
    def start(self, i: int, *extra: str) -> None:
        assert i not in self.procs, f"v{i} is running"
        self.starts[i] = self.starts.get(i, 0) + 1
        log = open(self.log_path(i), "wb")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "node", "start", "--home", str(self.home(i).root), *extra],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def kill(self, i: int) -> None:
        """A crash: SIGKILL, no chance to clean up."""
        proc = self.procs.pop(i)
        proc.kill()
        proc.wait(10)

    def stop(self, i: int) -> int:
        """A clean stop: SIGTERM; returns the exit code."""
        proc = self.procs.pop(i)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"v{i} did not stop on SIGTERM")

    def close(self) -> None:
        for i in list(self.procs):
            proc = self.procs.pop(i)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def logs(self) -> str:
        out = []
        for path in sorted(self.root.glob("v*.log")):
            lines = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name} (last 30 lines)\n" + "\n".join(lines[-30:]))
        return "\n".join(out)

    # RPC -----------------------------------------------------------------------------------------------
    def rpc(self, i: int, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rpc_ports[i]}/", data=body, headers={"Content-Type": "application/json"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"v{i} {method}: {answer['error']}")
        return answer["result"]

    def height(self, i: int) -> int:
        """The node's head, or -1 while it does not answer."""
        try:
            return int(self.rpc(i, "status")["height"])
        except (OSError, urllib.error.URLError, RuntimeError, ValueError):
            return -1

    def wait_heights(self, nodes: list[int], at_least: int, timeout_s: float = 60) -> None:
        poll_until(
            lambda: all(self.height(i) >= at_least for i in nodes),
            timeout_s,
            f"{['v%d' % i for i in nodes]} to reach height {at_least}",
            interval_s=0.2,
        )


def set_partition(net: Network, i: int, blocked: list[str]) -> Any:
    """The devnet admin switch on node i's peer port: refuse links with the named peers."""
    body = json.dumps({"blocked": blocked}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{net.p2p_ports[i]}/admin/partition", data=body, headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())
