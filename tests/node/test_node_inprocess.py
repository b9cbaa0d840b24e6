"""One node in this process: a lone validator commits, stops, and resumes from its own store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from consensus.block import Block
from consensus.block_store import BlockStore
from consensus.config import ConsensusConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from consensus.node import Node
from consensus.signer_guard import FileSignerGuard
from ledger import Genesis, LevelDBStore
from tests.ledger.helpers import make_genesis
from tests.node.helpers import wait_until
from tests.node.network import STAKE, validator_key


def lone_validator_home(root: Path) -> NodeHome:
    home = NodeHome(root)
    home.write_key(validator_key(0))
    home.write_config(
        NodeConfig(
            moniker="solo",
            p2p=P2PConfig(listen="127.0.0.1:0"),
            rpc=RPCConfig(listen="127.0.0.1:0"),
            consensus=ConsensusConfig(block_interval_ms=20),
        )
    )
    document = dict(make_genesis({1: 10**9}).document)
    document["genesis_time_ms"] = int(time.time() * 1000)
    document["validators"] = [{"address": validator_key(0).public_key.hex(), "name": "solo", "stake": STAKE}]
    document["total_supply"] += STAKE
    home.genesis_path.write_text(json.dumps(Genesis.from_document(document).document))
    return home


async def run_until_height(home: NodeHome, height: int) -> tuple[int, bytes]:
    node = Node(home.root)
    await node.start()
    try:
        assert node.is_validator()
        await wait_until(lambda: node.ledger.head.height >= height, 20, f"height {height}")
        head = node.ledger.head.height
        return head, node.blocks.block_hash(head) or b""
    finally:
        await node.stop()


def test_lone_validator_commits_stops_and_resumes(tmp_path: Path) -> None:
    home = lone_validator_home(tmp_path)
    first_head, first_hash = asyncio.run(run_until_height(home, 3))
    signed = FileSignerGuard(home.signer_path).load()
    assert signed is not None and signed.height >= first_head

    second_head, _ = asyncio.run(run_until_height(home, first_head + 3))
    assert second_head >= first_head + 3

    # The chain links up across the restart, and every block has its certificate.
    store = LevelDBStore(str(home.ledger_dir))
    try:
        blocks = BlockStore(store)
        previous = None
        for height in range(1, second_head + 1):
            block = blocks.block(height)
            assert isinstance(block, Block) and blocks.certificate(height) is not None
            if previous is not None:
                assert block.header.prev_block_hash == previous.hash
                assert block.header.time_ms > previous.header.time_ms
            previous = block
        assert blocks.block_hash(first_head) == first_hash
    finally:
        store.close()
