"""Relays of consensus messages and transaction announcements (RELAY-1, specs/consensus.md): a node
sends on what it first saw from a peer only to the peers that peer is not linked to, as its status
frames say. Real nodes in this process, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import consensus.engine as engine_module
import consensus.node as node_module
from consensus.node import Node
from consensus.p2p import Peer
from consensus.types import Proposal, ValidatorSet, Vote, VoteKind, proposal_sign_bytes, vote_sign_bytes
from ledger.crypto import Keypair
from ledger.crypto import sha256 as sha
from tests.node.helpers import wait_until
from tests.node.network import validator_key
from tests.node.test_tx_gossip import homes, run_nodes, transfers

FULL_MESH = {0: (), 1: (0,), 2: (0, 1), 3: (0, 1, 2)}


def _links_of(node: Node, other: Node) -> frozenset[bytes] | None:
    peer = node.p2p.peers.get(other.p2p.node_id)
    return None if peer is None else peer.data.get("links")


def test_in_a_full_mesh_no_consensus_message_is_relayed_and_blocks_commit(tmp_path: Path) -> None:
    node_homes = homes(tmp_path, FULL_MESH, validators=4)
    raws = transfers(4)

    async def scenario(nodes: list[Node]) -> None:
        ids = {node.p2p.node_id for node in nodes}
        await wait_until(lambda: all(_links_of(a, b) == ids - {b.p2p.node_id} for a in nodes for b in nodes if a is not b), 20, "links known")
        relayed_before = [n.stats["relayed"] for n in nodes]  # while links came up, a message may go on
        for raw in raws:
            await nodes[3].submit_tx(raw)
            await wait_until(lambda raw=raw: all(n.get_tx(sha(raw)) is not None for n in nodes), 20, "committed everywhere")
        assert min(n._ledger.head.height for n in nodes) >= 2
        for node, before in zip(nodes, relayed_before):
            assert node.stats["relayed"] == before  # every peer had each message from its sender
            assert node.p2p.stats["skipped_linked"] > 0
            assert node.p2p.stats["received_tx_hashes"] == 0
        assert len({n._ledger.state_root for n in nodes if n._ledger.head.height == nodes[0]._ledger.head.height}) == 1

    asyncio.run(run_nodes(node_homes, FULL_MESH, scenario))


def test_in_a_line_the_middle_node_relays_and_the_ends_decide_together(tmp_path: Path) -> None:
    """n0 - n1 - n2, all three validators (each height needs all three votes): n0's and n2's votes
    and proposals reach each other only through n1's relays, and transactions n2's client sent
    through n1's announcement."""
    line = {0: (), 1: (0,), 2: (1,)}
    node_homes = homes(tmp_path, line, validators=3)
    raws = transfers(3)

    async def scenario(nodes: list[Node]) -> None:
        for raw in raws:
            await nodes[2].submit_tx(raw)
            await wait_until(lambda raw=raw: all(n.get_tx(sha(raw)) is not None for n in nodes), 30, "committed everywhere")
        assert nodes[1].stats["relayed"] > 0
        assert nodes[0].stats["relayed"] == nodes[2].stats["relayed"] == 0  # their one peer is every message's source
        assert nodes[0].stats["txs_asked"] > 0  # n2's transactions reached n0 by n1's announcement

    asyncio.run(run_nodes(node_homes, line, scenario))


def test_a_link_counts_only_when_both_ends_name_it_and_a_malformed_status_names_none(tmp_path: Path) -> None:
    """n0, n1, n2 in a full mesh. n0 skips, for what it first saw from n1, only the peers that n1
    names and that name n1 back: a peer's word about its own links alone would let it have n0
    withhold others' messages from a node it never sends them to. A status whose `peers` is not
    a list of 32-byte ids is refused and counted, and that peer then counts as linked to none (so
    it is relayed everything); so does a status without `peers` (an earlier version)."""
    mesh = {0: (), 1: (0,), 2: (0, 1)}
    node_homes = homes(tmp_path, mesh, validators=1)

    async def scenario(nodes: list[Node]) -> None:
        n0, n1, n2 = nodes
        ids = [n.p2p.node_id for n in nodes]
        await wait_until(lambda: all(_links_of(a, b) == set(ids) - {b.p2p.node_id} for a in nodes for b in nodes if a is not b), 20, "links known")
        at_n0 = {i: n0.p2p.peers[ids[i]] for i in (1, 2)}
        height = n0._ledger.head.height
        assert n0._linked_both_ways(ids[1]) == {ids[2]}
        n0._on_frame(at_n0[1], "status", {"height": height, "peers": [ids[0], ids[2], bytes(32)]})
        assert n0._linked_both_ways(ids[1]) == {ids[2]}  # a node that is no peer of n0's: nothing to skip
        n0._on_frame(at_n0[2], "status", {"height": height, "peers": [ids[0]]})  # n2 does not name n1
        assert n0._linked_both_ways(ids[1]) == frozenset()
        n0._on_frame(at_n0[2], "status", {"height": height, "peers": [ids[0], ids[1]]})
        assert n0._linked_both_ways(ids[1]) == {ids[2]}
        before = n0.stats["invalid_messages"]
        for bad in (["x"], [b"short"], "peers", [bytes(32)] * 2000, {"a": 1}, [None]):
            n0._on_frame(at_n0[1], "status", {"height": height, "peers": [ids[0], ids[2]]})
            n0._on_frame(at_n0[1], "status", {"height": height, "peers": bad})  # as the peer layer hands a frame over
            assert _links_of(n0, n1) == frozenset() and n0._linked_both_ways(ids[1]) == frozenset()
        assert n0.stats["invalid_messages"] == before + 6
        n0._on_frame(at_n0[1], "status", {"height": height, "peers": [ids[0], ids[2]]})
        assert n0._linked_both_ways(ids[1]) == {ids[2]}
        n0._on_frame(at_n0[1], "status", {"height": height})
        assert _links_of(n0, n1) == frozenset()

    asyncio.run(run_nodes(node_homes, mesh, scenario))


def test_a_lost_relay_is_mended_while_the_height_is_stuck_within_its_round(tmp_path: Path) -> None:
    """n0 - n1 - n2, three validators. n1's relay of one proposal to n2 is lost: the height waits for
    n2's vote for it, and n1 relays what it passed on again once no progress was made for a
    gossip interval (RELAY-2), well inside the round's propose timeout, so the height is decided in
    the round of that proposal."""
    line = {0: (), 1: (0,), 2: (1,)}
    node_homes = homes(tmp_path, line, validators=3)

    async def scenario(nodes: list[Node]) -> None:
        n1 = nodes[1]
        lost: list[int] = []
        broadcast = n1.p2p.broadcast

        def lossy(kind: str, payload: object, exclude: object = None, skip: frozenset[bytes] = frozenset()) -> int:
            if kind == "proposal" and exclude is not None and not lost and n1._ledger.head.height >= 1:
                lost.append(payload["height"])  # type: ignore[index]
                return 0  # a relay that never left
            return broadcast(kind, payload, exclude=exclude, skip=skip)  # type: ignore[arg-type]

        first = transfers(1)[0]
        await nodes[2].submit_tx(first)
        await wait_until(lambda: all(n.get_tx(sha(first)) is not None for n in nodes), 30, "a first height decided")
        n1.p2p.broadcast = lossy  # type: ignore[method-assign]
        raw = transfers(2)[1]
        await nodes[2].submit_tx(raw)
        await wait_until(lambda: all(n.get_tx(sha(raw)) is not None for n in nodes), 30, "committed everywhere")
        assert lost, "a relay of a proposal was dropped"
        height = nodes[0].get_tx(sha(raw)).height  # type: ignore[union-attr]
        certificate = nodes[0].blocks.certificate(height)
        assert certificate is not None and certificate.round == 0

    asyncio.run(run_nodes(node_homes, line, scenario))


def test_what_is_kept_to_pass_on_is_bounded_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer may send block frames for the next heights that no proposal names: what a node keeps
    of them for RELAY-2 is bounded by MAX_PASSED_ON_BYTES, the oldest going first, and is all
    dropped once a height above them is committed."""
    monkeypatch.setattr(node_module, "MAX_PASSED_ON_BYTES", 1_000_000)

    async def scenario(n0: Node, n1: Node, source: Peer, height: int) -> None:
        for i in range(10):
            n0._relay("block", {"height": height, "hash": bytes([i]) * 32, "block": bytes(300_000)}, source, height, -1)
        assert n0._passed_on_bytes <= 1_000_000
        assert sum(m.size for m in n0._passed_on) == n0._passed_on_bytes
        assert [m.payload["hash"][0] for m in n0._passed_on] == [7, 8, 9]  # the newest
        raw = transfers(1)[0]
        await n1.submit_tx(raw)
        await wait_until(lambda: n0._ledger.head.height >= height, 20, "a height committed past them")
        assert all(m.height > n0._ledger.head.height for m in n0._passed_on)
        assert n0._passed_on_bytes == sum(m.size for m in n0._passed_on)

    _run_pair(tmp_path, scenario)


def test_a_forged_copy_with_a_genuine_signature_does_not_hide_the_genuine_vote(tmp_path: Path) -> None:
    """A peer sends a copy of a validator's vote with another round and the genuine signature
    first: the node refuses it (RELAY-3), and the genuine vote arriving after it is still new to
    the node (it is known by all its fields, not by its signature), so it is fed and passed on."""

    async def scenario(n0: Node, n1: Node, at_n0: Peer, height: int) -> None:
        signer = validator_key(0)
        sign_bytes = vote_sign_bytes(n0.chain_id, VoteKind.PREVOTE, height, 5, None, signer.public_key)
        genuine = Vote(VoteKind.PREVOTE, height, 5, None, signer.public_key, signer.sign(sign_bytes)).to_wire()
        forged = {**genuine, "round": 6}
        n0._on_frame(at_n0, "vote", forged)
        assert node_module._message_id("vote", genuine) not in n0._seen
        kept = len(n0._passed_on)
        n0._on_frame(at_n0, "vote", genuine)
        assert node_module._message_id("vote", genuine) in n0._seen
        assert len(n0._passed_on) == kept + 1 and n0._passed_on[-1].payload == genuine

    _run_pair(tmp_path, scenario)


def test_only_votes_and_proposals_signed_as_they_say_go_further(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RELAY-3, on a line n0 - n1 - n2 (n0 and n1 validate), frames sent to n1 from n0's link: of
    the height after the head, a vote with a broken signature, one validly signed by a key outside
    the set, a proposal signed by a validator that is not its round's proposer, and proposals of a
    round beyond those the engine takes, its last + 1 and a far one (refused before their proposer
    is looked up: a far round's costs time a peer could choose), are counted invalid, neither seen
    nor relayed to n2. A genuine vote and a proposal of the engine's last round by its proposer go on
    to n2; so does a vote of the height after, whose validator set is not known yet."""
    line = {0: (), 1: (0,), 2: (1,)}
    looked_up: list[int] = []
    real_proposer = engine_module.proposer

    def proposer_spy(validators: ValidatorSet, height: int, round: int) -> bytes:
        looked_up.append(round)
        return real_proposer(validators, height, round)

    monkeypatch.setattr(engine_module, "proposer", proposer_spy)  # the node's check and the engine's

    async def scenario(nodes: list[Node]) -> None:
        n0, n1, n2 = nodes
        await wait_until(lambda: _links_of(n1, n0) == {n1.p2p.node_id} and _links_of(n1, n2) == {n1.p2p.node_id}, 20, "links known")
        at_n1 = n1.p2p.peers[n0.p2p.node_id]
        height = n1._ledger.head.height + 1  # from here on nothing awaits, so it stays the head's next
        members, outsider = [validator_key(0), validator_key(1)], validator_key(7)
        round_proposer = real_proposer(n1.app.validator_set(height), height, 3)
        other_member = next(kp for kp in members if kp.address != round_proposer)

        def vote(signer: Keypair, at: int, round: int) -> dict[str, object]:
            sign_bytes = vote_sign_bytes(n1.chain_id, VoteKind.PREVOTE, at, round, None, signer.public_key)
            return Vote(VoteKind.PREVOTE, at, round, None, signer.public_key, signer.sign(sign_bytes)).to_wire()

        def proposal(signer: Keypair, round: int) -> dict[str, object]:
            block_hash = bytes(32)
            return Proposal(height, round, block_hash, -1, signer.sign(proposal_sign_bytes(n1.chain_id, height, round, block_hash, -1))).to_wire()

        bound = n1.engine.max_round if n1.engine.height == height else node_module.MAX_ROUNDS_AHEAD  # the engine's window

        def by_proposer(round: int) -> dict[str, object]:
            address = real_proposer(n1.app.validator_set(height), height, round)
            return proposal(next(kp for kp in members if kp.address == address), round)

        broken = vote(members[0], height, 4)
        broken["signature"] = bytes([broken["signature"][0] ^ 1]) + broken["signature"][1:]  # type: ignore[index]
        far = 2**31 - 1
        refused = [
            ("vote", broken), ("vote", vote(outsider, height, 4)), ("proposal", proposal(other_member, 3)),
            ("proposal", by_proposer(bound + 1)), ("proposal", proposal(members[0], far)),
        ]
        invalid, relayed, kept = n1.stats["invalid_messages"], n1.stats["relayed"], len(n1._passed_on)
        for kind, payload in refused:
            n1._on_frame(at_n1, kind, payload)
            assert node_module._message_id(kind, payload) not in n1._seen
        assert n1.stats["invalid_messages"] == invalid + len(refused)
        assert (n1.stats["relayed"], len(n1._passed_on)) == (relayed, kept)
        assert 3 in looked_up and bound + 1 not in looked_up and far not in looked_up
        relayed_ones = [("vote", vote(members[0], height, 4)), ("proposal", by_proposer(bound)), ("vote", vote(outsider, height + 1, 0))]
        for kind, payload in relayed_ones:
            n1._on_frame(at_n1, kind, payload)
            assert n1._passed_on[-1].payload == payload
        assert n1.stats["invalid_messages"] == invalid + len(refused)
        assert (n1.stats["relayed"], len(n1._passed_on)) == (relayed + 3, kept + 3)  # each to n2

    asyncio.run(run_nodes(homes(tmp_path, line, validators=2), line, scenario))


def _run_pair(tmp_path: Path, scenario: Callable[[Node, Node, Peer, int], Awaitable[None]]) -> None:
    """n0 validates, n1 follows; `scenario(n0, n1, n1's peer at n0, the height after n0's head)`."""
    links = {0: (), 1: (0,)}

    async def pair(nodes: list[Node]) -> None:
        n0, n1 = nodes
        await scenario(n0, n1, n0.p2p.peers[n1.p2p.node_id], n0._ledger.head.height + 1)

    asyncio.run(run_nodes(homes(tmp_path, links, validators=1), links, pair))
