"""The transaction indexes are optional (`tx_index.enabled`): a node without them writes none,
answers `tx` and `account_txs` with -32005 and still commits and confirms; turned on again, they
cover the blocks from then on, and the store remembers from where."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from consensus.block_store import ACCOUNT_TX, TX_INDEX_FROM, TX_LOCATION, BlockStore
from consensus.config import NodeHome, TxIndexConfig
from consensus.node import Node
from consensus.rpc_methods import CallContext, ErrorCode, RpcError, call_method
from ledger import LevelDBStore, MemoryStore, make_tx
from ledger.crypto import sha256
from tests.ledger.helpers import CHAIN_ID, key
from tests.node.test_node_inprocess import lone_validator_home


def test_the_store_records_from_where_the_indexes_hold() -> None:
    store = MemoryStore()
    blocks = BlockStore(store)
    assert blocks.configure_tx_index(True, 0) == 1 and store.get(TX_INDEX_FROM) is None  # as every store had them
    assert blocks.configure_tx_index(False, 5) is None and blocks.tx_index_from is None
    assert BlockStore(store).configure_tx_index(False, 6) is None  # still off after a restart
    assert BlockStore(store).configure_tx_index(True, 7) == 8  # on again: from the next block
    assert BlockStore(store).configure_tx_index(True, 9) == 8  # and it stays so
    assert BlockStore(store).configure_tx_index(False, 10) is None
    assert BlockStore(store).configure_tx_index(True, 12) == 13


def test_records_from_before_a_time_without_indexes_are_not_served() -> None:
    store = MemoryStore()
    blocks = BlockStore(store)
    address, old_hash, new_hash = key(1).address, b"\x01" * 32, b"\x02" * 32
    for height, tx_hash in ((3, old_hash), (9, new_hash)):
        position = (2**64 - 1 - height).to_bytes(8, "big") + bytes(4)
        store.write_batch({TX_LOCATION + tx_hash: height.to_bytes(8, "big") + bytes(4), ACCOUNT_TX + address + position: tx_hash})
    assert blocks.configure_tx_index(True, 9) == 1
    assert blocks.tx_location(old_hash) == (3, 0) and blocks.account_tx_hashes(address, 10, None) == [new_hash, old_hash]
    blocks.configure_tx_index(False, 9)
    assert blocks.tx_location(new_hash) is None and blocks.account_tx_hashes(address, 10, None) == []
    assert blocks.configure_tx_index(True, 6) == 7  # on again after height 6: height 3's records are from before
    assert blocks.tx_location(old_hash) is None and blocks.tx_location(new_hash) == (9, 0)
    assert blocks.account_tx_hashes(address, 10, None) == [new_hash]


def set_tx_index(home: NodeHome, enabled: bool) -> None:
    home.write_config(replace(home.load_config(), tx_index=TxIndexConfig(enabled=enabled)))


async def call(node: Node, method: str, **params: object) -> object:
    return await call_method(CallContext(node), method, params)


async def commit_one(node: Node, nonce: int) -> bytes:
    raw = make_tx(CHAIN_ID, "transfer", key(1), nonce, to=key(2).address, amount=1)
    answer = await call(node, "submit_tx_commit", tx=raw.hex(), timeout_ms=20_000)  # no index needed
    assert isinstance(answer, dict) and answer["hash"] == sha256(raw).hex()
    return sha256(raw)


def test_a_node_without_indexes_commits_confirms_and_refuses_lookups_with_a_stable_code(tmp_path: Path) -> None:
    """On (the default), then off, then on again: off, lookups answer -32005 and no index record is
    written; on again, the indexes cover the blocks from then on, and what was indexed before the
    time off is not served either (a history with a hole would look complete)."""
    home = lone_validator_home(tmp_path)
    stopped_at: list[int] = []

    async def phase(enabled: bool, nonce: int, check: Callable[[Node, bytes], Awaitable[None]]) -> bytes:
        set_tx_index(home, enabled)
        node = Node(home.root)
        await node.start()
        try:
            tx_hash = await commit_one(node, nonce)
            await check(node, tx_hash)
            return tx_hash
        finally:
            await node.stop()
            stopped_at.append(node.ledger.head.height)

    async def indexed(node: Node, tx_hash: bytes) -> None:
        found = await call(node, "tx", hash=tx_hash.hex())
        assert isinstance(found, dict) and found["hash"] == tx_hash.hex()

    async def without(node: Node, tx_hash: bytes) -> None:
        late = await node.wait_for_tx(tx_hash, 0.05)  # a wait that starts after the commit still finds it
        assert late is not None and late.hash == tx_hash
        for method, params in (("tx", {"hash": tx_hash.hex()}), ("account_txs", {"address": key(1).address.hex()})):
            with pytest.raises(RpcError) as refused:
                await call(node, method, **params)
            assert refused.value.code == ErrorCode.NO_TX_INDEX and "tx_index" in refused.value.message
        status = await call(node, "status")
        assert isinstance(status, dict) and status["tx_index_from_height"] is None

    first = asyncio.run(phase(True, 0, indexed))
    store = LevelDBStore(str(home.ledger_dir))
    try:
        indexed_before = len(list(store.iterate(TX_LOCATION))), len(list(store.iterate(ACCOUNT_TX)))
    finally:
        store.close()
    assert indexed_before == (1, 2)  # the transfer by hash, and under both its accounts
    second = asyncio.run(phase(False, 1, without))
    store = LevelDBStore(str(home.ledger_dir))
    try:
        assert (len(list(store.iterate(TX_LOCATION))), len(list(store.iterate(ACCOUNT_TX)))) == indexed_before  # none written off
    finally:
        store.close()

    async def again(node: Node, later: bytes) -> None:
        status = await call(node, "status")
        assert isinstance(status, dict) and status["tx_index_from_height"] == stopped_at[1] + 1
        found = await call(node, "tx", hash=later.hex())
        assert isinstance(found, dict) and found["height"] > stopped_at[1]
        assert await call(node, "tx", hash=second.hex()) is None  # committed while the indexes were off
        assert await call(node, "tx", hash=first.hex()) is None  # indexed, but before the time off
        history = await call(node, "account_txs", address=key(1).address.hex())
        assert isinstance(history, dict) and [t["hash"] for t in history["txs"]] == [later.hex()]

    asyncio.run(phase(True, 2, again))


def test_by_default_a_node_indexes_from_its_first_block(tmp_path: Path) -> None:
    home = lone_validator_home(tmp_path)

    async def run() -> None:
        node = Node(home.root)
        await node.start()
        try:
            tx_hash = await commit_one(node, 0)
            found = await call(node, "tx", hash=tx_hash.hex())
            assert isinstance(found, dict) and found["hash"] == tx_hash.hex()
            status = await call(node, "status")
            assert isinstance(status, dict) and status["tx_index_from_height"] == 1
        finally:
            await node.stop()

    asyncio.run(run())


async def subscribe_tx(node: Node, tx_hash: bytes, timeout_ms: int) -> dict[str, object]:
    """The notification a websocket `tx` subscription to `node` gets for `tx_hash`."""
    async with aiohttp.ClientSession() as session, session.ws_connect(node.rpc.url + "/ws") as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": "tx", "hash": tx_hash.hex(), "timeout_ms": timeout_ms}})
        while True:  # bounded: each receive times out
            message = await ws.receive_json(timeout=30)
            if message.get("method") == "subscription":
                params = message["params"]
                assert isinstance(params, dict) and params["event"] == "tx"
                return params
            assert message.get("id") == 1 and "result" in message, message


def test_without_indexes_a_tx_subscription_hears_of_the_commits_this_run_of_the_node_made(tmp_path: Path) -> None:
    """specs/rpc.md: a `tx` subscription on a node without indexes is answered at once for a
    transaction this run of the node committed (among its last RECENT_COMMITS_MAX), even when it
    starts after the commit; one committed before the node restarted ends in -32002 at its timeout."""
    home = lone_validator_home(tmp_path)
    set_tx_index(home, False)

    async def run(nonce: int, earlier: bytes | None) -> bytes:
        node = Node(home.root)
        await node.start()
        try:
            tx_hash = await commit_one(node, nonce)
            heard = await subscribe_tx(node, tx_hash, 30_000)  # subscribed after the commit
            result = heard["result"]
            assert isinstance(result, dict) and result["hash"] == tx_hash.hex() and 1 <= result["height"] <= node.ledger.head.height
            if earlier is not None:
                missed = await subscribe_tx(node, earlier, 200)
                error = missed["error"]
                assert "result" not in missed and isinstance(error, dict) and error["code"] == ErrorCode.NOT_COMMITTED
            return tx_hash
        finally:
            await node.stop()

    first = asyncio.run(run(0, None))
    asyncio.run(run(1, first))
