"""The auditor's commands against a real `hearth node start` process: replay over its RPC, prove an
account through it, then replay its stores once it is stopped. Checks the audit reads exactly what
a node writes and serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.ledger.helpers import key, transfer_tx
from tests.node.network import Network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = Network(tmp_path, 1)
    try:
        yield net
    finally:
        net.close()


def audit(*args: str) -> object:
    return CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)


def test_audit_of_a_running_then_stopped_node(network: Network) -> None:
    net = network
    net.start(0)
    net.wait_heights([0], 1)
    for nonce in range(3):
        net.rpc(0, "submit_tx_commit", tx=transfer_tx(1, 2, 1_000 + nonce, nonce).hex())
    net.wait_heights([0], net.height(0) + 1)
    home = net.home(0)
    genesis = str(home.genesis_path)
    url = f"http://127.0.0.1:{net.rpc_ports[0]}/"

    over_rpc = audit("replay", "--rpc", url, "--genesis", genesis, "--json")
    assert over_rpc.exit_code == 0, over_rpc.stdout + over_rpc.stderr + net.logs()  # type: ignore[attr-defined]
    data = json.loads(over_rpc.stdout)  # type: ignore[attr-defined]
    assert data["ok"] and data["txs"] == 3 and data["final_height"] >= 2

    proved = audit("prove", key(2).address.hex(), "--rpc", url, "--genesis", genesis, "--json")
    assert proved.exit_code == 0, proved.stdout + proved.stderr  # type: ignore[attr-defined]
    assert json.loads(proved.stdout)["trust"] == "genesis"  # type: ignore[attr-defined]
    at_one = audit("prove", key(2).address.hex(), "--height", "1", "--rpc", url, "--genesis", genesis, "--json")
    assert at_one.exit_code == 0, at_one.stdout + at_one.stderr  # type: ignore[attr-defined]
    assert json.loads(at_one.stdout)["height"] == 1  # type: ignore[attr-defined]

    assert net.stop(0) == 0
    from_home = audit("replay", "--home", str(home.root), "--json")
    assert from_home.exit_code == 0, from_home.stdout + from_home.stderr  # type: ignore[attr-defined]
    stored = json.loads(from_home.stdout)  # type: ignore[attr-defined]
    assert stored["final_height"] >= data["final_height"]
    assert stored["txs"] == 3
