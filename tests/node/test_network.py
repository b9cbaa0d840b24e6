"""Validators as real processes on loopback: they commit, survive a crash, the crashed one catches
up by block sync to the same chain, a full node joins late, and a 2|2 partition halts then heals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.helpers import CHAIN_ID, key
from tests.node.helpers import poll_until
from tests.node.network import Network, set_partition
from ledger import make_tx

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = Network(tmp_path, 4, full_nodes=1)  # v4: a full node
    try:
        yield net
    finally:
        net.close()


def chain_at(net: Network, i: int, heights: range) -> list[tuple[str, str]]:
    """(block hash, state root) of each height, as node i serves it."""
    out = []
    for h in heights:
        header = net.rpc(i, "block", height=h)["header"]
        out.append((header["hash"], header["state_root"]))
    return out


def test_four_validators_commit_survive_a_crash_and_resync(network: Network) -> None:
    net = network
    try:
        for i in range(4):
            net.start(i)
        net.wait_heights([0, 1, 2, 3], 3)

        # A transfer sent to one validator is committed, and every node serves it.
        raw = make_tx(CHAIN_ID, "transfer", key(1), 0, to=key(2).address, amount=5_000)
        committed = net.rpc(0, "submit_tx_commit", tx=raw.hex(), timeout_ms=20_000)
        poll_until(lambda: all(net.rpc(i, "tx", hash=committed["hash"]) is not None for i in range(4)), 20, "tx everywhere")

        # Crash one: the other three keep committing.
        net.kill(3)
        crashed_at = max(net.height(i) for i in range(3))
        net.wait_heights([0, 1, 2], crashed_at + 5)

        # Restart it: it catches up by block sync and follows the head again.
        net.start(3)
        target = max(net.height(i) for i in range(3))
        net.wait_heights([3], target + 2)
        assert "block sync: asking" in net.log_path(3).read_text()

        # One chain: identical block hashes and state roots at every height on every node.
        common = min(net.height(i) for i in range(4))
        heights = range(1, common + 1)
        reference = chain_at(net, 0, heights)
        for i in (1, 2, 3):
            assert chain_at(net, i, heights) == reference, f"v{i} differs from v0"
        statuses = [net.rpc(i, "status") for i in range(4)]
        assert all(s["is_validator"] for s in statuses)

        # A full node (its key in no validator set) joins late, syncs and follows the same chain.
        net.start(4)
        net.wait_heights([4], common + 1)
        assert chain_at(net, 4, heights) == reference
        assert not net.rpc(4, "status")["is_validator"]

        for i in range(5):
            assert net.stop(i) == 0
    except BaseException:
        print(net.logs())
        raise


def test_partition_two_from_two_halts_then_heals(network: Network) -> None:
    net = network
    try:
        for i in range(4):
            net.start(i)
        net.wait_heights([0, 1, 2, 3], 2)
        halves = {0: ["v2", "v3"], 1: ["v2", "v3"], 2: ["v0", "v1"], 3: ["v0", "v1"]}
        for i, blocked in halves.items():
            set_partition(net, i, blocked)
        poll_until(lambda: all(net.rpc(i, "status")["peers"] == 1 for i in range(4)), 20, "links cut")
        # Neither half holds more than 2/3 of the power: no height beyond the highest one
        # decided before the cut is committed anywhere.
        stalled = max(net.height(i) for i in range(4))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert max(net.height(i) for i in range(4)) == stalled
            time.sleep(0.2)
        for i in range(4):
            set_partition(net, i, [])
        net.wait_heights([0, 1, 2, 3], stalled + 3, timeout_s=60)
        common = min(net.height(i) for i in range(4))
        reference = chain_at(net, 0, range(1, common + 1))
        for i in (1, 2, 3):
            assert chain_at(net, i, range(1, common + 1)) == reference
    except BaseException:
        print(net.logs())
        raise
