"""One malformed transaction or peer frame must never stop a node (found in review)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import msgpack
import pytest

from consensus.node import Node
from ledger import Code, Rejected
from tests.node.helpers import wait_until
from tests.node.test_node_inprocess import lone_validator_home


def mixed_key_tx() -> bytes:
    """A body map with a byte key beside text keys: sorting those keys raises TypeError."""
    body = msgpack.packb({b"x": 1, "type": "transfer"}, use_bin_type=True)
    return msgpack.packb([body, [[b"\x01" * 32, b"\x02" * 64]]], use_bin_type=True)


def assert_node_survives(tmp_path: Path, attack: Callable[[Node], Awaitable[None]]) -> None:
    """Start a lone validator, run `attack` once it has a block, then require two more blocks."""
    home = lone_validator_home(tmp_path)

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            await wait_until(lambda: node.ledger.head.height >= 1, 20, "first block")
            await attack(node)
            height = node.ledger.head.height
            await wait_until(lambda: node._fatal is not None or node.ledger.head.height >= height + 2, 20, "two more blocks")
            assert node._fatal is None, f"node stopped: {node._fatal!r}"
        finally:
            await node.stop()

    asyncio.run(main())


def test_a_txs_frame_with_a_mixed_key_body_does_not_stop_the_node(tmp_path: Path) -> None:
    async def attack(node: Node) -> None:
        node._on_frame(SimpleNamespace(name="evil", node_id=b"\x09" * 32), "txs", [mixed_key_tx()])

    assert_node_survives(tmp_path, attack)


def test_an_rpc_submission_with_a_mixed_key_body_is_rejected_and_the_node_goes_on(tmp_path: Path) -> None:
    async def attack(node: Node) -> None:
        with pytest.raises(Rejected) as err:
            await asyncio.wait_for(node.submit_tx(mixed_key_tx()), 5)
        assert err.value.code is Code.TX_MALFORMED

    assert_node_survives(tmp_path, attack)


def test_p2p_frame_with_an_unhashable_kind_is_dropped() -> None:
    from consensus.config import P2PConfig
    from consensus.p2p import P2P
    from ledger.crypto import Keypair

    p2p = P2P(Keypair.from_seed(b"\x01" * 32), "c", P2PConfig(listen="127.0.0.1:0"), lambda *a: None, ["txs"])
    p2p._on_frame(SimpleNamespace(name="evil"), msgpack.packb([[1], 0]))
    assert p2p.stats["dropped_malformed"] == 1
