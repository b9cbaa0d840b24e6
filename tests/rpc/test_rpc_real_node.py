"""Every RPC method, the websocket and the CLI's main flow against a real `hearth node start` process
(one validator, so it commits alone) on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cli.rpc_client import RpcCallError, RpcClient
from consensus.rpc_methods import METHODS, OPENRPC_PATH, ErrorCode, proof_from_json
from ledger import Code
from ledger.crypto import sha256
from ledger.merkle import verify_proof
from tests.ledger.helpers import key, transfer_tx
from tests.node.network import REPO_ROOT, Network
from tests.rpc.fake_node import post_raw

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    net = Network(tmp_path_factory.mktemp("real-node"), 1)
    try:
        net.start(0)
        net.wait_heights([0], 1)
        yield net
    except BaseException:
        print(net.logs())
        raise
    finally:
        net.close()


@pytest.fixture(scope="module")
def client(network: Network) -> RpcClient:
    return RpcClient(f"http://127.0.0.1:{network.rpc_ports[0]}", timeout_s=30)


def addr(i: int) -> str:
    return key(i).address.hex()


def call_error(client: RpcClient, method: str, **params: Any) -> RpcCallError:
    with pytest.raises(RpcCallError) as err:
        client.call(method, **params)
    return err.value


def test_every_http_method_round_trips(client: RpcClient) -> None:
    seen: set[str] = set()

    def call(method: str, **params: Any) -> Any:
        seen.add(method)
        return client.call(method, **params)

    status = call("status")
    assert status["chain_id"] == "hearth-test" and status["height"] >= 1 and status["is_validator"] is True
    raw = transfer_tx(1, 2, 7_000, 0)
    committed = call("submit_tx_commit", tx=raw.hex(), timeout_ms=30_000)
    assert committed["hash"] == sha256(raw).hex() and committed["body"]["amount"] == 7_000
    second = transfer_tx(1, 2, 1_000, 1)
    assert call("submit_tx", tx=second.hex()) == {"hash": sha256(second).hex()}
    assert call("tx", hash=committed["hash"])["height"] == committed["height"]
    history = call("account_txs", address=addr(2), limit=5)["txs"]
    assert committed["hash"] in [t["hash"] for t in history]
    account = call("account", address=addr(1), project_periods=3)
    assert account["nonce"] >= 1 and account["projection"]["periods"] == 3
    supply = call("supply")
    assert supply["circulating"] + supply["commons_pool"] + supply["ubi_reserve"] + supply["bonded"] == supply["total"]
    assert call("params")["nodes"] == ["north"]
    block = call("block", height=committed["height"])
    assert raw.hex() in block["txs"] and block["header"]["height"] == committed["height"]
    assert block["commit"] is not None
    validators = call("validators")["validators"]
    assert len(validators) == 1 and validators[0]["power"] > 0
    proof = call("proof", address=addr(2))
    assert verify_proof(bytes.fromhex(proof["state_root"]), bytes.fromhex(proof["key"]), bytes.fromhex(proof["value"]), proof_from_json(proof["proof"]))
    node = call("node", id="north")
    assert node["id"] == "north" and node["council"]["threshold"] >= 1
    assert call("member", address=addr(1)) is None
    seen.add("quota")
    assert call_error(client, "quota", address=addr(1), resource="water").code == Code.UNKNOWN_RESOURCE.number
    seen.add("housing_unit")
    assert call_error(client, "housing_unit", node="north", unit="a").code == Code.UNKNOWN_UNIT.number
    assert call("housing_right", address=addr(1)) is None
    queue = call("housing_queue", node="north")
    assert (queue["node"], queue["waiting"], queue["vacant"], queue["queue"]) == ("north", 0, 0, [])
    with open(OPENRPC_PATH, encoding="utf-8") as f:
        assert call("rpc.discover") == json.load(f)
    stale = call_error(client, "submit_tx", tx=raw.hex())
    assert stale.code == Code.NONCE_STALE.number and stale.data["code"] == "NONCE_STALE"
    assert seen == {name for name, m in METHODS.items() if not m.websocket_only}


def test_websocket_subscriptions(network: Network, client: RpcClient) -> None:
    url = f"http://127.0.0.1:{network.rpc_ports[0]}/ws"
    nonce = client.call("account", address=addr(2))["nonce"]
    raw = transfer_tx(2, 1, 500, nonce)

    async def scenario() -> tuple[Any, Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": "new_block"}})
            await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": {"event": "tx", "hash": sha256(raw).hex()}})
            await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "submit_tx", "params": {"tx": raw.hex()}})
            block_note = tx_note = None
            while block_note is None or tx_note is None:  # bounded: each receive times out
                message = await ws.receive_json(timeout=30)
                if message.get("method") != "subscription":
                    assert "result" in message, message
                elif message["params"]["event"] == "new_block":
                    block_note = block_note or message
                else:
                    tx_note = message
            await ws.send_json({"jsonrpc": "2.0", "id": 4, "method": "unsubscribe", "params": {"subscription": block_note["params"]["subscription"]}})
            while True:
                message = await ws.receive_json(timeout=30)
                if message.get("id") == 4:
                    assert message["result"] is True
                    return block_note, tx_note

    block_note, tx_note = asyncio.run(scenario())
    assert block_note["params"]["result"]["header"]["height"] >= 1
    assert tx_note["params"]["result"]["hash"] == sha256(raw).hex()


def test_a_batch_of_submissions_is_admitted_in_order(network: Network, client: RpcClient) -> None:
    """A batch of submit_tx calls (the node admits it as one): one sender's consecutive nonces in
    one batch are all admitted, in order; a repeat answers its hash again; each refusal is that
    call's own error, with its ledger code."""
    base = f"http://127.0.0.1:{network.rpc_ports[0]}/"
    nonce = client.call("account", address=addr(2))["nonce"]
    chain = [transfer_tx(2, 1, 100 + i, nonce + i) for i in range(3)]
    tampered = bytearray(transfer_tx(1, 2, 5, 99))
    tampered[-1] ^= 1
    raws = [*chain, chain[0], transfer_tx(2, 1, 1, nonce + 9), bytes(tampered)]
    batch = [{"jsonrpc": "2.0", "id": i, "method": "submit_tx", "params": {"tx": raw.hex()}} for i, raw in enumerate(raws)]
    status, answers = post_raw(base, json.dumps(batch).encode())
    assert status == 200 and [a["id"] for a in answers] == list(range(len(raws)))
    assert [a["result"]["hash"] for a in answers[:4]] == [sha256(raw).hex() for raw in raws[:4]]
    assert answers[4]["error"]["data"]["code"] == "NONCE_FUTURE", answers[4]
    assert answers[5]["error"]["data"]["code"] == "BAD_SIGNATURE", answers[5]
    following = transfer_tx(2, 1, 1, nonce + 3)
    committed = client.call("submit_tx_commit", tx=following.hex(), timeout_ms=30_000)
    assert committed["hash"] == sha256(following).hex()
    for raw in chain:
        assert client.call("tx", hash=sha256(raw).hex())["height"] <= committed["height"]


def test_malformed_input_leaves_the_node_committing(network: Network, client: RpcClient) -> None:
    base = f"http://127.0.0.1:{network.rpc_ports[0]}/"
    for body in (b"{", b"[" * 100_000, b"9" * 5000, b"[]", b'{"jsonrpc":"2.0","id":1,"method":"account","params":{"address":1e999}}', b" " * (2 << 20)):
        status, answer = post_raw(base, body)
        assert status in (200, 413) and answer["error"]["code"] in (ErrorCode.PARSE_ERROR, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_PARAMS)
    before = client.call("status")["height"]
    network.wait_heights([0], before + 2)


def test_cli_main_flow_in_subprocesses(network: Network, tmp_path: Path) -> None:
    env = {**os.environ, "HEARTH_RPC": f"http://127.0.0.1:{network.rpc_ports[0]}", "HEARTH_HOME": str(tmp_path / "home")}

    def hearth(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    seed = tmp_path / "seed"
    seed.write_text(key(1).seed.hex())
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    assert hearth("keys", "import", "alice", "--seed-file", str(seed), "--password-file", str(password)).returncode == 0
    assert hearth("keys", "new", "bob", "--password-file", str(password)).returncode == 0
    sent = hearth("wallet", "send", "--from", "alice", "--to", "bob", "--amount", "3", "--wait", "--password-file", str(password), "--json")
    assert sent.returncode == 0, sent.stderr
    outcome = json.loads(sent.stdout)
    assert outcome["committed"] is True
    assert json.loads(hearth("wallet", "balance", "bob", "--json").stdout)["balance"] == 3_000_000
    assert "3.000000 coins" in hearth("tx", "show", outcome["hash"]).stdout
    assert "verified" in hearth("wallet", "proof", "bob").stdout
    refused = hearth("wallet", "send", "--from", "bob", "--to", "alice", "--amount", "1000", "--password-file", str(password))
    assert refused.returncode == 4 and "INSUFFICIENT_FUNDS (1013)" in refused.stderr and "Traceback" not in refused.stderr
