"""The network benchmark's devnet, shared by the benchmark (test_bench_network.py) and the profiling
harness (profile_network.py): 4 validators whose genesis also funds the load generator's accounts,
configured as a production node runs, and what both read off the processes afterwards."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from consensus.config import NodeHome, TxIndexConfig
from devnet.layout import create_devnet
from devnet.manifest import ValidatorEntry
from devnet.network import Devnet
from devnet.processes import rpc
from tests.benchmarks.loadgen import account_key

__all__ = ["ACCOUNTS", "TX_INDEX", "VALIDATORS", "agreement", "children", "create_bench_devnet", "process_cpu_s", "tree_cpu_s"]

VALIDATORS = 4
ACCOUNTS = 10_000
BALANCE = 10**12
TX_INDEX = False
"""The benchmark's validators keep no transaction indexes, as CometBFT advises for a validator that
serves no queries (`tx_index.enabled`, consensus/config.py): nothing in the benchmark asks for a
transaction by hash or an account's history. profile_network --tx-index measures them with."""


def create_bench_devnet(directory: Path, tx_index: bool = TX_INDEX) -> Devnet:
    """A new devnet at `directory`: VALIDATORS validators, a 30 s period, ACCOUNTS funded accounts,
    each validator with the transaction indexes or not (`tx_index`)."""
    accounts = [(account_key(i).address, BALANCE) for i in range(ACCOUNTS)]
    manifest = create_devnet(directory, validators=VALIDATORS, period_seconds=30, extra_accounts=accounts)
    for entry in manifest.validators:  # the generator is one client submitting thousands of calls a second
        home = NodeHome(Path(entry.home))
        config = home.load_config()
        home.write_config(
            replace(
                config,
                rpc=replace(config.rpc, rate_per_s=1_000_000, rate_burst=2_000_000),
                devnet=replace(config.devnet, check_recorded_effects=False),  # what a production node runs
                tx_index=TxIndexConfig(enabled=tx_index),
            )
        )
    return Devnet(directory)


def agreement(entries: tuple[ValidatorEntry, ...]) -> dict[str, Any]:
    """Every node at one common height: the same block hash and state root there, and supply conserved."""
    target = max(rpc(e, "status")["height"] for e in entries)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and min(rpc(e, "status")["height"] for e in entries) < target:
        time.sleep(0.5)
    headers = [rpc(e, "block", height=target)["header"] for e in entries]
    supplies = [rpc(e, "supply") for e in entries]
    parts = ("circulating", "commons_pool", "ubi_reserve", "bonded")
    return {
        "height": target,
        "same_block_hash": len({h["hash"] for h in headers}) == 1,
        "same_state_root": len({h["state_root"] for h in headers}) == 1,
        "conserved": all(sum(s[p] for p in parts) == s["total"] for s in supplies),
    }


def process_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) of a process, (0, 0) if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def children(pids: list[int]) -> dict[int, list[int]]:
    """The child processes of each of `pids` (a node's signature workers)."""
    found: dict[int, list[int]] = {pid: [] for pid in pids}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent in found:
                found[parent].append(int(entry.name))
    return found


def tree_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process in `pids` and of its children, by pid."""
    return {pid: sum(map(sum, map(process_cpu_s, [pid, *kids]))) for pid, kids in children(pids).items()}
