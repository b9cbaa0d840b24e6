"""One malformed transaction or peer frame must never stop a node (found in review)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import msgpack
import pytest

from consensus.node import Node
from tests.node.helpers import wait_until
from tests.node.test_node_inprocess import lone_validator_home


def mixed_key_tx() -> bytes:
    body = msgpack.packb({b"x": 1, "type": "transfer"}, use_bin_type=True)
    return msgpack.packb([body, [[b"\x01" * 32, b"\x02" * 64]]], use_bin_type=True)


def test_a_txs_frame_with_a_mixed_key_body_does_not_stop_the_node(tmp_path: Path) -> None:
    home = lone_validator_home(tmp_path)

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            await wait_until(lambda: node.ledger.head.height >= 1, 20, "first block")
            peer = SimpleNamespace(name="evil", node_id=b"\x09" * 32)
            node._on_frame(peer, "txs", [mixed_key_tx()])
            height = node.ledger.head.height
            await wait_until(lambda: node._fatal is not None or node.ledger.head.height >= height + 2, 20, "two more blocks")
            assert node._fatal is None, f"node stopped: {node._fatal!r}"
        finally:
            await node.stop()

    asyncio.run(main())


def test_p2p_frame_with_an_unhashable_kind_is_dropped() -> None:
    from consensus.p2p import P2P
    from consensus.config import P2PConfig
    from ledger.crypto import Keypair

    p2p = P2P(Keypair.from_seed(b"\x01" * 32), "c", P2PConfig(listen="127.0.0.1:0"), lambda *a: None, ["txs"])
    p2p._on_frame(SimpleNamespace(name="evil"), msgpack.packb([[1], 0]))
    assert p2p.stats["dropped_malformed"] == 1


def test_an_rpc_submission_with_a_mixed_key_body_does_not_stop_the_node(tmp_path: Path) -> None:
    from ledger import Code, Rejected

    home = lone_validator_home(tmp_path)

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            await wait_until(lambda: node.ledger.head.height >= 1, 20, "first block")
            with pytest.raises(Rejected) as err:
                await asyncio.wait_for(node.submit_tx(mixed_key_tx()), 5)
            assert err.value.code is Code.TX_MALFORMED
            height = node.ledger.head.height
            await wait_until(lambda: node._fatal is not None or node.ledger.head.height >= height + 2, 20, "two more blocks")
            assert node._fatal is None, f"node stopped: {node._fatal!r}"
        finally:
            await node.stop()

    asyncio.run(main())
