"""Transaction gossip between real nodes in this process: a client's transactions go whole to every
peer; a peer's are only announced by hash, and fetched by those they did not reach whole."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from consensus.config import ConsensusConfig, MempoolConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from consensus.node import TX_ANNOUNCE_INTERVAL_S, TX_GOSSIP_INTERVAL_S, Node
from ledger import Genesis, Rejected, make_tx
from ledger.crypto import sha256 as sha
from ledger.errors import Code
from ledger.records import account_key
from tests.ledger.helpers import CHAIN_ID, key, make_genesis
from tests.node.helpers import free_ports, wait_until
from tests.node.network import STAKE, validator_key


def homes(root: Path, links: dict[int, tuple[int, ...]], validators: int, signature_workers: int = 1) -> list[NodeHome]:
    """Nodes 0..n-1; node i dials the nodes in links[i]; the first `validators` validate."""
    count = len(links)
    ports = free_ports(count)
    document = dict(make_genesis({1: 10**9}).document)
    document["genesis_time_ms"] = int(time.time() * 1000)
    document["validators"] = [
        {"address": validator_key(i).public_key.hex(), "name": f"v{i}", "stake": STAKE} for i in range(validators)
    ]
    document["total_supply"] += validators * STAKE
    genesis_text = json.dumps(Genesis.from_document(document).document)
    out = []
    for i in range(count):
        home = NodeHome(root / f"n{i}")
        home.write_key(validator_key(i))
        peers = tuple(f"{validator_key(j).public_key.hex()}@127.0.0.1:{ports[j]}" for j in links[i])
        home.write_config(
            NodeConfig(
                moniker=f"n{i}",
                p2p=P2PConfig(listen=f"127.0.0.1:{ports[i]}", peers=peers, reconnect_max_ms=200),
                rpc=RPCConfig(listen="127.0.0.1:0"),
                consensus=ConsensusConfig(block_interval_ms=50, empty_block_interval_ms=60_000),
                mempool=MempoolConfig(signature_workers=signature_workers),
            )
        )
        home.genesis_path.write_text(genesis_text)
        out.append(home)
    return out


async def run_nodes(node_homes: list[NodeHome], links: dict[int, tuple[int, ...]], scenario) -> None:  # type: ignore[no-untyped-def]
    nodes = [Node(h.root) for h in node_homes]
    for node in nodes:
        await node.start()
    try:
        want = {i: set(links[i]) | {j for j in links if i in links[j]} for i in links}
        await wait_until(lambda: all(len(nodes[i].p2p.peers) == len(want[i]) for i in links), 20, "links up")
        await scenario(nodes)
    finally:
        for node in nodes:
            await node.stop()


def transfers(count: int) -> list[bytes]:
    return [make_tx(CHAIN_ID, "transfer", key(1), n, to=key(2).address, amount=1) for n in range(count)]


def test_in_a_full_mesh_each_node_receives_each_transaction_once_and_asks_for_none(tmp_path: Path) -> None:
    # One validator (n0) that waits for transactions, so the pool holds them while gossip runs.
    links = {0: (), 1: (0,), 2: (0, 1)}
    node_homes = homes(tmp_path, links, validators=1)
    raws = transfers(5)

    async def scenario(nodes: list[Node]) -> None:
        for raw in raws:
            await nodes[2].submit_tx(raw)
        # every node has them (committed or pending): n0 and n1 straight from n2, whole
        await wait_until(lambda: all(n.stats["txs_received"] >= len(raws) for n in nodes[:2]), 20, "gossip")
        await wait_until(lambda: nodes[0].ledger.head.height >= 1 and nodes[0].get_tx(sha(raws[-1])) is not None, 20, "commit")
        await asyncio.sleep(0)  # let any announcement in flight be handled
        for node in nodes[:2]:
            assert node.stats["txs_received"] == len(raws), "a transaction came whole more than once"
            assert node.stats["txs_asked"] == 0, "in a full mesh nothing is missing"
        assert nodes[2].stats["txs_received"] == 0, "nothing is sent back to the node it came from"

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_in_a_full_mesh_no_transaction_is_announced(tmp_path: Path) -> None:
    """n1 has n2's transactions whole and knows from n2's status that n2 is linked to n0 too: it
    announces them to nobody (RELAY-1), where before every announcement named what n0 had."""
    links = {0: (), 1: (0,), 2: (0, 1)}
    node_homes = homes(tmp_path, links, validators=1)
    raws = transfers(12)

    async def scenario(nodes: list[Node]) -> None:
        for raw in raws:  # one a gossip turn, over more than one announcement interval
            await nodes[2].submit_tx(raw)
            await asyncio.sleep(TX_GOSSIP_INTERVAL_S)
        await wait_until(lambda: nodes[1].stats["txs_received"] == len(raws), 20, "n1 has them all from n2")
        await wait_until(lambda: all(nodes[i].get_tx(sha(raw)) is not None for i in range(3) for raw in raws), 20, "committed")
        await asyncio.sleep(2 * TX_ANNOUNCE_INTERVAL_S)  # past the next announcement turn of n1 and n0
        for node in nodes:
            assert node.p2p.stats["received_tx_hashes"] == 0
            assert node.stats["txs_asked"] == 0
        assert nodes[1].p2p.stats["skipped_linked"] > 0  # relays and announcements it left out

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_announcements_go_once_an_interval_whatever_the_transactions_pace(tmp_path: Path) -> None:
    """A line, n2 - n1 - n0: n1 announces n2's transactions to n0 every TX_ANNOUNCE_INTERVAL_S,
    not on every gossip turn."""
    links = {0: (), 1: (0,), 2: (1,)}
    node_homes = homes(tmp_path, links, validators=1)
    raws = transfers(12)

    async def scenario(nodes: list[Node]) -> None:
        start = time.monotonic()
        for raw in raws:  # one a gossip turn: n2 sends a `txs` frame each turn
            await nodes[2].submit_tx(raw)
            await asyncio.sleep(TX_GOSSIP_INTERVAL_S)
        await wait_until(lambda: nodes[1].stats["txs_received"] == len(raws), 20, "n1 has them all from n2")
        await wait_until(lambda: nodes[0].get_tx(sha(raws[-1])) is not None, 20, "the last committed at n0")
        elapsed = time.monotonic() - start
        turns = nodes[1].p2p.stats["received_txs"]
        announcements = nodes[0].p2p.stats["received_tx_hashes"]
        assert 1 <= announcements <= 1 + elapsed / TX_ANNOUNCE_INTERVAL_S, (announcements, elapsed)
        assert announcements < turns, (announcements, turns)

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_beyond_one_hop_an_announced_transaction_is_fetched_and_committed(tmp_path: Path) -> None:
    # A line: n2 - n1 - n0. Only n0 validates; the transaction enters at n2.
    links = {0: (), 1: (0,), 2: (1,)}
    node_homes = homes(tmp_path, links, validators=1)
    raws = transfers(3)

    async def scenario(nodes: list[Node]) -> None:
        for raw in raws:
            await nodes[2].submit_tx(raw)
        await wait_until(lambda: all(nodes[0].get_tx(sha(raw)) is not None for raw in raws), 20, "committed at n0")
        assert nodes[0].stats["txs_asked"] == len(raws), "n0 asked n1 for what n1 announced"
        assert nodes[0].stats["txs_received"] == len(raws)
        assert nodes[1].stats["txs_asked"] == 0, "n1 had them whole from n2"

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_nodes_without_signature_workers_check_here_and_commit_alike(tmp_path: Path) -> None:
    """`mempool.signature_workers = 0` (a devnet of more validators than cores): no verifier
    process; a client's transactions (the priority verifier: a forged one refused) and a peer's (the
    gossip verifier) are checked in the node's own process, and committed as with workers."""
    links = {0: (), 1: (0,), 2: (0, 1)}
    node_homes = homes(tmp_path, links, validators=1, signature_workers=0)
    raws = transfers(40)
    forged = bytearray(make_tx(CHAIN_ID, "transfer", key(1), 40, to=key(2).address, amount=1))
    forged[-1] ^= 1

    async def scenario(nodes: list[Node]) -> None:
        assert all(n._verifier.pids() == [] and n._priority_verifier.pids() == [] for n in nodes)
        with pytest.raises(Rejected) as refused:
            await nodes[2].submit_tx(bytes(forged))
        assert refused.value.code is Code.BAD_SIGNATURE
        for raw in raws:
            await nodes[2].submit_tx(raw)
        await wait_until(lambda: all(nodes[0].get_tx(sha(raw)) is not None for raw in raws), 20, "committed at n0")
        await wait_until(lambda: all(n.ledger.head.height >= nodes[0].ledger.head.height for n in nodes), 20, "all at n0's head")
        assert all(n.stats["txs_received"] >= len(raws) for n in nodes[:2]), "n0 and n1 had them by gossip"
        for node in nodes:
            assert node.get_tx(sha(bytes(forged))) is None
            assert node.ledger.get_record(account_key(key(1).address)).nonce == len(raws)

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_bad_announcements_and_requests_are_refused_and_counted(tmp_path: Path) -> None:
    links = {0: (), 1: (0,)}
    node_homes = homes(tmp_path, links, validators=1)

    async def scenario(nodes: list[Node]) -> None:
        peer = next(iter(nodes[0].p2p.peers.values()))
        before = nodes[0].stats["invalid_messages"]
        for kind, payload in [
            ("tx_hashes", "not a list"),
            ("tx_hashes", [b"short"]),
            ("get_txs", [b"\x00" * 32] * 10_000),
            ("get_txs", {"a": 1}),
            ("tx_hashes", [b"\x00" * 32, 7]),
            ("tx_hashes", [b"\x00" * 32, "x" * 32]),
            ("txs", [b"a transaction", 3]),
            ("txs", "not a list"),
        ]:
            nodes[0]._on_frame(peer, kind, payload)
        assert nodes[0].stats["invalid_messages"] == before + 8
        # a request for an unknown hash is answered with nothing, an empty announcement is none: nothing breaks
        nodes[0]._on_frame(peer, "get_txs", [b"\x01" * 32])
        nodes[0]._on_frame(peer, "tx_hashes", [])
        assert nodes[0].stats["invalid_messages"] == before + 8

    asyncio.run(run_nodes(node_homes, links, scenario))


def test_peer_frames_arriving_together_are_checked_in_one_verifier_call(tmp_path: Path) -> None:
    """node.py `_tx_check_loop`: a small batch of peers' transactions waits TX_CHECK_GATHER_S for
    more, so frames from several peers a few loop turns apart make one call to the verifier (a call
    costs the node and its worker about as much as a few signatures); all are admitted."""
    from types import SimpleNamespace

    from consensus.node import TX_CHECK_GATHER
    from tests.node.test_node_inprocess import lone_validator_home

    frames = [[make_tx(CHAIN_ID, "transfer", key(1), 3 * f + i, to=key(2).address, amount=1) for i in range(3)] for f in range(3)]
    assert sum(map(len, frames)) < TX_CHECK_GATHER
    home = lone_validator_home(tmp_path, ConsensusConfig(block_interval_ms=60_000, empty_block_interval_ms=60_000))

    async def main() -> list[int]:
        node = Node(home.root)
        await node.start()
        try:
            calls: list[int] = []
            check = node._verifier.check

            async def counting(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None):  # type: ignore[no-untyped-def]
                calls.append(len(raws))
                assert hashes == [sha(raw) for raw in raws]  # computed once, on arrival
                return await check(raws, chain_id, hashes)

            node._verifier.check = counting  # type: ignore[method-assign]
            for f, frame in enumerate(frames):  # three peers' frames, a loop turn apart
                node._on_frame(SimpleNamespace(name=f"p{f}", node_id=bytes([f + 1]) * 32), "txs", frame)
                await asyncio.sleep(0)
            await wait_until(lambda: len(node.mempool) == 9, 20, "all admitted")
            return calls
        finally:
            await node.stop()

    assert asyncio.run(main()) == [9]


def withhold_tx_gossip(node: Node) -> None:
    """`node` sends its transactions to no peer (its other frames go as usual)."""
    broadcast = node.p2p.broadcast

    def no_tx_gossip(kind: str, payload: object, exclude: object = None, skip: frozenset[bytes] = frozenset()) -> int:
        return 0 if kind == "txs" else broadcast(kind, payload, exclude=exclude, skip=skip)  # type: ignore[arg-type]

    node.p2p.broadcast = no_tx_gossip  # type: ignore[method-assign]


def record_checks(verifier: object) -> list[list[bytes]]:
    """Every batch of wire bytes `verifier` is asked to check from now on, in order."""
    batches: list[list[bytes]] = []
    check = verifier.check  # type: ignore[attr-defined]

    async def recorded(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[object]:
        batches.append(list(raws))
        return await check(raws, chain_id, hashes)  # type: ignore[no-any-return]

    verifier.check = recorded  # type: ignore[attr-defined]
    return batches


def run_follower_without_tx_gossip(tmp_path: Path, scenario) -> None:  # type: ignore[no-untyped-def]
    """n0 validates and n1 follows, both without signature workers; n0 sends its transactions to
    n1 only in blocks. `scenario(n0, n1)` runs once they are linked."""
    links = {0: (), 1: (0,)}

    async def withheld(nodes: list[Node]) -> None:
        withhold_tx_gossip(nodes[0])
        await scenario(*nodes)

    asyncio.run(run_nodes(homes(tmp_path, links, validators=1, signature_workers=0), links, withheld))


def test_without_workers_a_block_of_unseen_transactions_is_checked_here_and_applied(tmp_path: Path) -> None:
    """n0 validates; n1 follows. n0's gossip of transactions to n1 is lost, so the blocks bring n1
    hundreds of transactions it has never seen: without signature workers its priority verifier
    checks them in its own process (the block precheck, BLOCK_PRECHECK_MIN_TXS and more), and n1
    applies the blocks to the same state."""
    raws = transfers(300)

    async def scenario(n0: Node, n1: Node) -> None:
        checked_at_n1 = record_checks(n1._priority_verifier)
        assert n1._priority_verifier.pids() == []
        results = await n0.submit_txs(raws)
        assert all(isinstance(r, bytes) for r in results)
        await wait_until(lambda: all(n1.get_tx(sha(raw)) is not None for raw in raws), 30, "applied at n1")
        await wait_until(lambda: n1.ledger.head.height >= n0.ledger.head.height, 20, "n1 at n0's head")
        assert n1.stats["txs_received"] == 0  # none came by gossip
        sizes = [len(batch) for batch in checked_at_n1]
        assert sum(sizes) >= len(raws) and max(sizes) >= 16  # by the block precheck, here
        height = n0.ledger.head.height
        assert n1.blocks.block_hash(height) == n0.blocks.block_hash(height) and n1.ledger.state_root == n0.ledger.state_root

    run_follower_without_tx_gossip(tmp_path, scenario)


def test_a_late_copy_of_a_committed_transaction_is_decoded_not_checked_again(tmp_path: Path) -> None:
    """A node forgets the decoded form of what it commits (`SignatureCache.forget_decoded`: its
    heap holds what is pending, not the last 50,000 transactions it saw) and keeps the hashes. So
    a peer's copy that arrives after the commit (n0's gossip to n1, held back until n1 has applied
    the blocks that carry them) goes to no signature check: n1 decodes it again and refuses it
    (its nonce is used), and it is not pending."""
    raws = transfers(40)

    async def scenario(n0: Node, n1: Node) -> None:
        gossip_checked = record_checks(n1._verifier)
        assert all(isinstance(r, bytes) for r in await n0.submit_txs(raws))
        await wait_until(lambda: all(n1.get_tx(sha(raw)) is not None for raw in raws), 30, "applied at n1")
        assert all(n1.verified.decoded(raw) is None and sha(raw) in n1.verified for raw in raws)
        refused = n1.mempool.stats["rejected"]
        n1._receive_txs(None, raws)  # the late copies
        await wait_until(lambda: n1.mempool.stats["rejected"] == refused + len(raws), 20, "the copies refused")
        assert [raw for batch in gossip_checked for raw in batch] == [] and n1.stats["txs_received"] == len(raws)
        assert not any(sha(raw) in n1.mempool for raw in raws)
        assert all(n1.verified.decoded(raw) is None for raw in raws)  # refused: not kept decoded either

    run_follower_without_tx_gossip(tmp_path, scenario)
