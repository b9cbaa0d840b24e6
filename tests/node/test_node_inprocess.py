"""One node in this process: a lone validator commits, stops, and resumes from its own store."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path

from consensus.block import Block
from consensus.block_store import BlockStore
from consensus.config import ConsensusConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from consensus.node import Node
from consensus.signer_guard import LEGACY_TOMBSTONE, FileSignerGuard
from ledger import Genesis, LevelDBStore
from ledger import Rejected, make_tx
from ledger.errors import Code
from tests.ledger.helpers import CHAIN_ID, key, make_genesis
from tests.node.helpers import collector_off, wait_until
from tests.node.network import STAKE, validator_key


def lone_validator_home(root: Path, consensus: ConsensusConfig | None = None) -> NodeHome:
    home = NodeHome(root)
    home.write_key(validator_key(0))
    home.write_config(
        NodeConfig(
            moniker="solo",
            p2p=P2PConfig(listen="127.0.0.1:0"),
            rpc=RPCConfig(listen="127.0.0.1:0"),
            consensus=consensus or ConsensusConfig(block_interval_ms=20),
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


def test_a_home_from_before_slots_keeps_its_signing_history(tmp_path: Path) -> None:
    """A node whose data holds the old `signer.json` (the state alone) starts from it, goes on past
    it, and leaves the tombstone that keeps an older release from signing on this home again."""
    home = lone_validator_home(tmp_path)
    first_head, _ = asyncio.run(run_until_height(home, 2))
    signed = FileSignerGuard(home.signer_path).load()
    assert signed is not None
    home.legacy_signer_path.write_bytes(signed.to_bytes())  # as the release before slots left it
    home.signer_path.unlink()
    second_head, _ = asyncio.run(run_until_height(home, first_head + 2))
    assert second_head >= first_head + 2
    assert home.legacy_signer_path.read_bytes() == LEGACY_TOMBSTONE
    resumed = FileSignerGuard(home.signer_path, home.legacy_signer_path).load()
    assert resumed is not None and resumed.position > signed.position


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


def two_validator_homes(root: Path) -> tuple[NodeHome, NodeHome]:
    from tests.node.helpers import free_ports

    p2p = free_ports(2)
    homes = []
    document = dict(make_genesis({1: 10**9}).document)
    document["genesis_time_ms"] = int(time.time() * 1000)
    document["validators"] = [
        {"address": validator_key(i).public_key.hex(), "name": f"v{i}", "stake": STAKE} for i in range(2)
    ]
    document["total_supply"] += 2 * STAKE
    genesis_text = json.dumps(Genesis.from_document(document).document)
    for i in range(2):
        home = NodeHome(root / f"v{i}")
        home.write_key(validator_key(i))
        other = 1 - i
        home.write_config(
            NodeConfig(
                moniker=f"v{i}",
                p2p=P2PConfig(listen=f"127.0.0.1:{p2p[i]}", peers=(f"127.0.0.1:{p2p[other]}",), reconnect_max_ms=200),
                rpc=RPCConfig(listen="127.0.0.1:0"),
                consensus=ConsensusConfig(block_interval_ms=20, gossip_interval_ms=100),
            )
        )
        home.genesis_path.write_text(genesis_text)
        homes.append(home)
    return homes[0], homes[1]


def test_restarted_validator_replays_its_wal_and_resends_what_it_signed(tmp_path: Path) -> None:
    """Two validators of equal power need each other. The first signs at height 1 alone, stops,
    restarts: it replays its WAL (its own proposal or votes among it), and when the second one
    comes up, the first one's resent messages let height 1 be decided."""
    home_a, home_b = two_validator_homes(tmp_path)

    async def main() -> None:
        a = Node(home_a.root)
        await a.start()
        try:
            await wait_until(lambda: len(a.wal._records) > 0 and a.signer.last_signed is not None, 20, "a signs alone")
            assert a.ledger.head.height == 0
        finally:
            await a.stop()
        signed_before = FileSignerGuard(home_a.signer_path).load()
        assert signed_before is not None and signed_before.height == 1

        a = Node(home_a.root)
        await a.start()
        b = Node(home_b.root)
        try:
            assert any(kind in ("vote", "proposal") for _, _, kind, _ in a._own), "own messages restored from the WAL"
            await b.start()
            await wait_until(lambda: a.ledger.head.height >= 2 and b.ledger.head.height >= 2, 30, "both commit")
            assert a.blocks.block_hash(1) == b.blocks.block_hash(1)
        finally:
            await b.stop()
            await a.stop()

    asyncio.run(main())


def test_with_an_empty_mempool_the_next_height_waits_for_a_transaction(tmp_path: Path) -> None:
    home = lone_validator_home(tmp_path, ConsensusConfig(block_interval_ms=20, empty_block_interval_ms=600_000))

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            await wait_until(lambda: node.ledger.head.height >= 1, 20, "the first block")
            raw = make_tx(CHAIN_ID, "transfer", key(1), 0, to=key(2).address, amount=7)
            result = await asyncio.wait_for(node.submit_tx(raw), 5)
            committed = await node.wait_for_tx(result, 10)
            assert committed is not None
            # Only the transaction ended the (ten-minute) wait: no empty block came between.
            assert committed.height == 2 and node.ledger.head.height == 2
        finally:
            await node.stop()

    asyncio.run(main())


def test_a_refused_submission_leaves_no_cycle_through_the_frame_that_raised_it(tmp_path: Path) -> None:
    """`submit_tx` raises the refusal its one-call batch returned. The traceback holds the frame it
    raises from; were the refusal still one of that frame's locals, the two would make a cycle that
    only the collector frees, one per refused client call."""
    home = lone_validator_home(tmp_path)

    async def main() -> list[bool]:
        node = Node(home.root)
        await node.start()
        try:
            forged = bytearray(make_tx(CHAIN_ID, "transfer", key(1), 0, to=key(2).address, amount=7))
            forged[-1] ^= 1  # the signature's last byte
            try:
                await node.submit_tx(bytes(forged))
            except Rejected as exc:
                assert exc.code is Code.BAD_SIGNATURE
                holds = []
                tb = exc.__traceback__
                while tb is not None:
                    if tb.tb_frame.f_code is Node.submit_tx.__code__:
                        holds.append("result" in tb.tb_frame.f_locals)
                    tb = tb.tb_next
                return holds
            return []
        finally:
            await node.stop()

    assert asyncio.run(main()) == [False]  # the frame is in the traceback, the refusal not in it


def test_fired_timers_are_freed_without_the_collector(tmp_path: Path) -> None:
    """Every height schedules timers (its start, the engine's timeouts). A fired one is freed by
    reference counting: a handle kept by a closure that the handle itself holds would wait for the
    collector, one cycle per timer, and reach its older generations on a loaded node."""
    home = lone_validator_home(tmp_path)

    def fired_node_timers(node: Node) -> list[asyncio.TimerHandle]:
        pending = set(map(id, node._timers.values()))
        return [
            o for o in gc.get_objects()
            if isinstance(o, asyncio.TimerHandle) and getattr(o._callback, "__qualname__", "").startswith("Node.") and id(o) not in pending
        ]

    async def main() -> int:
        node = Node(home.root)
        with collector_off():
            await node.start()
            try:
                await wait_until(lambda: node.ledger.head.height >= 6, 20, "height 6")  # a timer fired for each start
                return len(fired_node_timers(node))
            finally:
                await node.stop()

    assert asyncio.run(main()) <= 1  # the loop may still hold the one it ran last
