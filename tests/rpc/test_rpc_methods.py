"""Every method in consensus.rpc_methods.METHODS, round trip over HTTP against the fake node."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cli.rpc_client import RpcCallError, RpcClient
from consensus.mempool import MempoolFull
from consensus.rpc_methods import METHODS, OPENRPC_PATH, ErrorCode, proof_from_json
from ledger import Code
from ledger.constants import MAX_TX_BYTES, RATE_SCALE
from ledger.crypto import sha256
from ledger.merkle import verify_proof
from ledger.queries import get_account_info, get_supply
from tests.ledger.helpers import PERIOD_MS, council_address, council_tx, community_genesis, key, signed_tx, transfer_tx
from tests.rpc.conftest import COIN
from tests.rpc.fake_node import ServedNode


def addr(i: int) -> str:
    return key(i).address.hex()


def error_of(client: RpcClient, method: str, **params: object) -> RpcCallError:
    with pytest.raises(RpcCallError) as err:
        client.call(method, **params)
    return err.value


def test_status_reports_the_head(served: ServedNode, client: RpcClient) -> None:
    client.call("submit_tx", tx=transfer_tx(1, 2, COIN, 0).hex())
    status = client.call("status")
    ledger = served.node.ledger
    assert status["chain_id"] == "hearth-test"
    assert status["genesis_hash"] == served.node.genesis.hash.hex()
    assert status["height"] == 1 == ledger.head.height
    assert status["state_root"] == ledger.state_root.hex()
    assert status["block_hash"] == served.node.blocks[1]["header"]["hash"]
    assert status["block_time_ms"] == ledger.head.time_ms
    assert status["period"] == ledger.head.period
    assert (status["syncing"], status["peers"], status["is_validator"]) == (False, 3, True)


def test_account_is_the_ledger_query_at_the_head(served: ServedNode, client: RpcClient) -> None:
    served.run(lambda: served.node.commit_block(time_ms=3 * PERIOD_MS))
    answer = client.call("account", address=addr(1))
    expected = served.run(lambda: get_account_info(served.node.ledger.view(), key(1).address))
    assert answer == {**expected, "height": 1}
    assert answer["pending_demurrage"] > 0 and answer["pending_ubi"] > 0
    assert answer["member"] == {"joined_period": 0}
    unknown = client.call("account", address="0x" + "ab" * 32)
    assert (unknown["exists"], unknown["balance"], unknown["nonce"]) == (False, 0, 0)


@pytest.mark.parametrize("who", [1, 2])
def test_account_projection_equals_what_the_chain_then_shows(served: ServedNode, client: RpcClient, who: int) -> None:
    projected = client.call("account", address=addr(who), project_periods=7)["projection"]
    assert projected["periods"] == 7 and projected["period"] == 7
    served.run(lambda: served.node.commit_block(time_ms=7 * PERIOD_MS))
    later = client.call("account", address=addr(who))
    assert later["period"] == 7
    assert projected["balance"] == later["balance"]
    assert (projected["pending_demurrage"], projected["pending_ubi"]) == (later["pending_demurrage"], later["pending_ubi"])


def test_supply_parts_add_up(served: ServedNode, client: RpcClient) -> None:
    served.run(lambda: served.node.commit_block(time_ms=2 * PERIOD_MS))
    supply = client.call("supply")
    assert supply == {"height": 1, **served.run(lambda: get_supply(served.node.ledger.view()))}
    assert supply["circulating"] + supply["commons_pool"] + supply["ubi_reserve"] + supply["bonded"] == supply["total"]
    assert supply["total"] == 180 * COIN


def test_params(client: RpcClient) -> None:
    params = client.call("params")
    assert params["chain_id"] == "hearth-test"
    assert params["nodes"] == ["north"] and params["rules"]["resources"] == []
    assert params["demurrage_rate"] == RATE_SCALE // 100 and params["rate_scale"] == RATE_SCALE
    assert params["units_per_coin"] == COIN and params["max_tx_bytes"] == MAX_TX_BYTES


def test_submit_tx_then_tx_finds_it(client: RpcClient) -> None:
    raw = transfer_tx(1, 2, 5 * COIN, 0)
    assert client.call("submit_tx", tx=raw.hex()) == {"hash": sha256(raw).hex()}
    found = client.call("tx", hash=sha256(raw).hex())
    assert (found["height"], found["index"], found["tx"]) == (1, 0, raw.hex())
    assert found["body"]["type"] == "transfer" and found["body"]["amount"] == 5 * COIN
    assert found["body"]["to"] == addr(2) and found["signers"] == [addr(1)]
    assert found["result"] == {"code": 0}
    assert client.call("tx", hash="00" * 32) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (transfer_tx(1, 2, 5 * COIN, 3), Code.NONCE_FUTURE),
        (transfer_tx(1, 2, 10**15, 0), Code.INSUFFICIENT_FUNDS),
        (b"\x93\x01\x02\x03", Code.TX_MALFORMED),
        (b"\x00" * (MAX_TX_BYTES + 1), Code.TX_TOO_LARGE),
    ],
)
def test_rejections_carry_the_ledger_code(client: RpcClient, raw: bytes, code: Code) -> None:
    err = error_of(client, "submit_tx", tx=raw.hex())
    assert err.code == code.number
    assert err.data["code"] == code.name and err.data["number"] == code.number
    assert err.message == err.data["message"]


def test_submit_tx_commit_waits_for_the_commit() -> None:
    from tests.rpc.conftest import rpc_genesis

    with ServedNode(rpc_genesis(), commit="soon") as served:
        client = RpcClient(served.url)
        raw = transfer_tx(1, 2, COIN, 0)
        result = client.call("submit_tx_commit", tx=raw.hex())
        assert (result["hash"], result["height"], result["index"]) == (sha256(raw).hex(), 1, 0)
        assert client.call("account", address=addr(2))["balance"] == 21 * COIN


def test_submit_tx_commit_times_out_with_the_hash() -> None:
    from tests.rpc.conftest import rpc_genesis

    with ServedNode(rpc_genesis(), commit="manual") as served:
        client = RpcClient(served.url)
        raw = transfer_tx(1, 2, COIN, 0)
        err = error_of(client, "submit_tx_commit", tx=raw.hex(), timeout_ms=50)
        assert err.code == ErrorCode.NOT_COMMITTED and err.data == {"hash": sha256(raw).hex()}
        assert client.call("tx", hash=sha256(raw).hex()) is None
        served.run(served.node.commit_pending)
        assert client.call("tx", hash=sha256(raw).hex())["height"] == 1


def test_mempool_full_has_its_code() -> None:
    from tests.rpc.conftest import rpc_genesis

    with ServedNode(rpc_genesis(), commit="manual") as served:
        served.node.mempool_max = 1
        client = RpcClient(served.url)
        client.call("submit_tx", tx=transfer_tx(1, 2, COIN, 0).hex())
        err = error_of(client, "submit_tx", tx=transfer_tx(1, 2, COIN, 1).hex())
        assert err.code == MempoolFull.number == 2001 and err.data["code"] == "MEMPOOL_FULL"


def test_account_txs_pages_newest_first(client: RpcClient) -> None:
    hashes = []
    for nonce in range(5):
        raw = transfer_tx(1 if nonce % 2 == 0 else 2, 2 if nonce % 2 == 0 else 1, COIN, nonce // 2)
        hashes.append(client.call("submit_tx", tx=raw.hex())["hash"])
    first = client.call("account_txs", address=addr(2), limit=3)["txs"]
    assert [t["hash"] for t in first] == hashes[::-1][:3]
    last = first[-1]
    rest = client.call("account_txs", address=addr(2), limit=3, before_height=last["height"], before_index=last["index"])["txs"]
    assert [t["hash"] for t in rest] == hashes[::-1][3:]
    assert client.call("account_txs", address=addr(9))["txs"] == []


def test_block_has_header_txs_and_commit(served: ServedNode, client: RpcClient) -> None:
    raw = transfer_tx(1, 2, COIN, 0)
    client.call("submit_tx", tx=raw.hex())
    served.run(lambda: served.node.commit_block())
    block1 = client.call("block", height=1)
    assert block1["txs"] == [raw.hex()] and block1["header"]["height"] == 1
    assert block1["commit"]["block_hash"] == block1["header"]["hash"]
    head = client.call("block")
    assert head["header"]["height"] == 2 and head["header"]["parent_hash"] == block1["header"]["hash"]
    assert client.call("block", height=99) is None


def test_validators(client: RpcClient) -> None:
    answer = client.call("validators")
    assert answer == {"height": 0, "validators": [{"address": addr(3), "name": "v3", "stake": 10 * COIN, "power": 10}]}
    assert client.call("validators", height=5) is None


def test_proof_verifies_against_the_state_root(served: ServedNode, client: RpcClient) -> None:
    client.call("submit_tx", tx=transfer_tx(1, 2, COIN, 0).hex())
    answer = client.call("proof", address=addr(1))
    assert answer["height"] == 1 and answer["state_root"] == client.call("status")["state_root"]
    assert answer["account"] == {"balance": 49 * COIN, "nonce": 1, "settled_period": 0}
    root, key_bytes = bytes.fromhex(answer["state_root"]), bytes.fromhex(answer["key"])
    proof = proof_from_json(answer["proof"])
    assert verify_proof(root, key_bytes, bytes.fromhex(answer["value"]), proof)
    assert not verify_proof(root, key_bytes, bytes.fromhex(answer["value"]) + b"\x00", proof)
    absent = client.call("proof", address="cd" * 32, height=1)
    assert absent["value"] is None and absent["account"] is None
    past = client.call("proof", address=addr(1), height=0)  # before the transfer
    assert past["height"] == 0 and past["account"]["nonce"] == 0 and past["state_root"] != answer["state_root"]
    assert verify_proof(bytes.fromhex(past["state_root"]), key_bytes, bytes.fromhex(past["value"]), proof_from_json(past["proof"]))
    assert error_of(client, "proof", address=addr(1), height=2).code == ErrorCode.UNAVAILABLE  # not yet committed


def test_discover_serves_the_file_and_documents_every_method(client: RpcClient) -> None:
    with open(OPENRPC_PATH, encoding="utf-8") as f:
        on_disk = json.load(f)
    served_doc = client.call("rpc.discover")
    assert served_doc == on_disk
    documented = {m["name"]: m for m in served_doc["methods"]}
    assert documented.keys() == METHODS.keys()
    for name, method in METHODS.items():
        doc_params = {p["name"]: p.get("required", False) for p in documented[name]["params"]}
        assert doc_params == {p.name: p.required for p in method.params}, name
        assert documented[name].get("x-websocket-only", False) == method.websocket_only, name


def test_discover_lists_every_error_code() -> None:
    with open(OPENRPC_PATH, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["x-ledger-codes"] == {c.name: {"code": c.number, "message": c.default_message} for c in Code}
    documented = {e["code"] for e in doc["components"]["errors"].values()}
    assert {int(c) for c in ErrorCode} <= documented


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("account", {}),
        ("account", {"address": "xyz"}),
        ("account", {"address": 5}),
        ("account", {"address": addr(1), "project_periods": -1}),
        ("account", {"address": addr(1), "project_periods": 10**6}),
        ("account", {"address": addr(1), "color": "red"}),
        ("tx", {"hash": "ab"}),
        ("block", {"height": "1"}),
        ("block", {"height": True}),
        ("block", {"height": 1.0}),
        ("block", {"height": 2**64}),
        ("submit_tx", {"tx": "abc"}),
        ("submit_tx", {"tx": ["ab"]}),
        ("account_txs", {"address": addr(1), "limit": 0}),
    ],
)
def test_bad_params_are_invalid_params(client: RpcClient, method: str, params: dict[str, object]) -> None:
    err = error_of(client, method, **params)
    assert err.code == ErrorCode.INVALID_PARAMS and err.message.startswith("invalid params")


def test_unknown_method_and_websocket_only_methods_over_http(client: RpcClient) -> None:
    assert error_of(client, "transfer_everything").code == ErrorCode.METHOD_NOT_FOUND
    assert error_of(client, "subscribe", event="new_block").code == ErrorCode.METHOD_NOT_FOUND


# nodes, membership, quotas, housing ------------------------------------------------------------------
@pytest.fixture
def community_node() -> Iterator[ServedNode]:
    with ServedNode(community_genesis(units=(), balances={1: 50 * COIN, 2: 50 * COIN, 4: COIN})) as served:
        yield served


@pytest.fixture
def community(community_node: ServedNode) -> RpcClient:
    return RpcClient(community_node.url)


def test_node_and_member(community: RpcClient) -> None:
    node = community.call("node", id="north")
    assert node["id"] == "north" and node["council"]["address"] == council_address("north").hex()
    assert node["council"]["threshold"] == 2 and node["member_count"] == 3
    assert set(node["quotas"]) == {"water", "energy"} and node["height"] == 0
    assert community.call("member", address=addr(1)) == {
        "address": addr(1), "node": "north", "joined_period": 0, "residence": None, "application": None, "height": 0,
    }
    assert community.call("member", address=addr(4)) is None
    assert error_of(community, "node", id="west").code == Code.UNKNOWN_NODE.number
    assert error_of(community, "node", id="North").code == ErrorCode.INVALID_PARAMS


def test_quota(community_node: ServedNode, community: RpcClient) -> None:
    community_node.run(lambda: community_node.node.commit_block(time_ms=PERIOD_MS))  # genesis members get quota from period 1
    water = community.call("quota", address=addr(1), resource="water")
    assert water["node"] == "north" and water["unit"] == "litre"
    assert water["allowance"] == water["holding"] == water["left"] == 1_000 // 3
    assert community.call("quota", address=addr(4), resource="water") is None
    assert error_of(community, "quota", address=addr(1), resource="gold").code == Code.UNKNOWN_RESOURCE.number


def test_housing_queue_unit_and_right(community: RpcClient) -> None:
    community.call("submit_tx", tx=signed_tx("housing_apply", 1, 0, household=2, needs=0).hex())
    community.call("submit_tx", tx=signed_tx("housing_apply", 2, 0, household=1, needs=0b10).hex())
    queue = community.call("housing_queue", node="north")
    assert (queue["waiting"], queue["vacant"]) == (2, 0)
    assert [a["address"] for a in queue["queue"]] == [addr(2), addr(1)]  # more need flags first
    assert [a["address"] for a in community.call("housing_queue", node="north", limit=1)["queue"]] == [addr(2)]
    assert community.call("member", address=addr(1))["application"]["household"] == 2
    assert community.call("housing_right", address=addr(2)) is None
    community.call("submit_tx", tx=council_tx("unit_add", 0, unit="a", capacity=2, attributes=sha256(b"flat a")).hex())
    unit = community.call("housing_unit", node="north", unit="a")
    assert unit["vacant"] is False and unit["right"]["holder"] == addr(2) and unit["attributes"] == sha256(b"flat a").hex()
    right = community.call("housing_right", address=addr(2))
    assert right["unit"] == "a" and right["role"] == "holder" and right["history"][0]["event"] == "granted"
    assert error_of(community, "housing_unit", node="north", unit="zz").code == Code.UNKNOWN_UNIT.number
    assert error_of(community, "housing_queue", node="west").code == Code.UNKNOWN_NODE.number


def test_a_call_past_its_time_bound_is_an_internal_error_and_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from consensus.rpc_methods import CallContext, Method, RpcError, call_method

    cancelled = []

    async def slow(ctx: CallContext) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    monkeypatch.setitem(METHODS, "slow_for_test", Method("slow_for_test", slow, timeout_s=0.05))

    async def main() -> RpcError:
        with pytest.raises(RpcError) as err:
            await call_method(CallContext(node=None), "slow_for_test", {})  # type: ignore[arg-type]
        return err.value

    error = asyncio.run(main())
    assert error.code == ErrorCode.INTERNAL_ERROR and "did not finish within 0.05 s" in error.message
    assert cancelled == [True]
