"""The ledger application: block building and validation, block time, evidence and slashing,
block sync's certificate checks, and what a commit stores."""

from __future__ import annotations

import pytest

from consensus.app_ledger import BlockRefused, EvidencePool, LedgerApp
from consensus.block import Block
from consensus.block_store import BlockStore
from consensus.clock import FakeClock
from consensus.config import ConsensusConfig
from consensus.evidence import DuplicateVoteEvidence
from consensus.mempool import Mempool
from consensus.types import CommitCertificate, Vote, VoteKind, vote_sign_bytes
from ledger import LedgerDB, MemoryStore, SignatureCache
from ledger.crypto import sha256
from tests.ledger.helpers import CHAIN_ID, key, make_genesis, transfer_tx

VALIDATORS = (11, 12, 13, 14)
STAKE = 10 * 10**6
GENESIS_MS = 1_700_000_000_000
DRIFT_MS = ConsensusConfig().max_clock_drift_ms


def genesis():  # type: ignore[no-untyped-def]
    return make_genesis({1: 10**9, 2: 10**9}, validators={i: STAKE for i in VALIDATORS}, extra={"genesis_time_ms": GENESIS_MS})


class Node:
    """One node's application over its own ledger, with a clock the test moves."""

    def __init__(self, proposer: int = VALIDATORS[0], check_recorded_effects: bool = False) -> None:
        self.store = MemoryStore()
        self.ledger = LedgerDB(self.store, genesis())
        self.verified = SignatureCache()
        self.mempool = Mempool(self.ledger, self.verified)
        self.blocks = BlockStore(self.store)
        self.evidence = EvidencePool()
        self.clock = FakeClock(GENESIS_MS + 1_000)
        self.app = LedgerApp(
            self.ledger, self.blocks, self.mempool, self.evidence, self.verified, self.clock, key(proposer).address, ConsensusConfig(),
            check_recorded_effects=check_recorded_effects,
        )


def sign_vote(i: int, kind: VoteKind, height: int, round: int, block_hash: bytes | None) -> Vote:
    kp = key(i)
    signature = kp.sign(vote_sign_bytes(CHAIN_ID, kind, height, round, block_hash, kp.address))
    return Vote(kind, height, round, block_hash, kp.address, signature)


def certificate(height: int, block_hash: bytes, signers: tuple[int, ...] = VALIDATORS[:3]) -> CommitCertificate:
    return CommitCertificate.from_precommits([sign_vote(i, VoteKind.PRECOMMIT, height, 0, block_hash) for i in signers])


def propose_and_commit(proposer: Node, others: list[Node]) -> Block:
    height = proposer.ledger.head.height + 1
    data, block_hash = proposer.app.propose_block(height, 0, proposer.clock.now_ms())
    for node in [proposer, *others]:
        assert node.app.validate_block(height, data)
        node.app.commit(block_hash, data, certificate(height, block_hash))
    block = proposer.app.decode(data)
    assert block is not None
    return block


def _tamper(node: Node, raw: bytes) -> None:
    """Make the pool's record of `raw` lie about what it wrote (as a flaw in the rule would)."""
    from ledger.records import Account, account_key

    entry = node.mempool._entries[sha256(raw)]
    entry.writes = {**entry.writes, account_key(key(2).address): Account(7, 0, 0)}


def test_with_the_check_on_records_that_disagree_with_a_full_run_stop_the_node() -> None:
    """`check_recorded_effects` (devnets): the proposer's build and a validator's execution each run
    a second time without records; any difference is a ConsensusInvariantViolation, which stops a
    node. Without the check the lie stays local: the proposal's root is refused by honest peers."""
    from consensus.errors import ConsensusInvariantViolation

    raw = transfer_tx(1, 2, 500, 0)
    proposer, validator, checked_proposer = Node(), Node(check_recorded_effects=True), Node(check_recorded_effects=True)
    for node in (proposer, validator, checked_proposer):
        node.mempool.add(raw)
    _tamper(checked_proposer, raw)
    with pytest.raises(ConsensusInvariantViolation, match="full build"):
        checked_proposer.app.propose_block(1, 0, checked_proposer.clock.now_ms())
    data, _ = proposer.app.propose_block(1, 0, proposer.clock.now_ms())  # an honest proposal
    assert validator.app.validate_block(1, data), "records that hold agree with the full run"
    validator.app._executed.clear()
    _tamper(validator, raw)
    with pytest.raises(ConsensusInvariantViolation, match="full run"):
        validator.app.validate_block(1, data)
    unchecked = Node()
    unchecked.mempool.add(raw)
    _tamper(unchecked, raw)
    assert not unchecked.app.validate_block(1, data), "without the check: a wrong root, the block refused"


def test_validator_set_comes_from_ledger_state() -> None:
    node = Node()
    validators = node.app.validator_set(1)
    assert {v.address for v in validators.validators} == {key(i).address for i in VALIDATORS}
    assert all(v.power == STAKE // 10**6 for v in validators.validators)


def test_proposed_block_carries_mempool_txs_and_validates_elsewhere() -> None:
    a, b = Node(), Node()
    raw = transfer_tx(1, 2, 500, 0)
    a.mempool.add(raw)
    block = propose_and_commit(a, [b])
    assert block.txs == (raw,)
    assert a.ledger.state_root == b.ledger.state_root == block.header.state_root
    assert b.blocks.block_hash(1) == block.hash and b.blocks.certificate(1) is not None
    assert b.blocks.tx_location(sha256(raw)) == (1, 0)
    assert b.blocks.account_tx_hashes(key(2).address, 10, None) == [sha256(raw)]
    # The next block names this one as its parent.
    a.clock.advance_ms(1_000)
    second = propose_and_commit(a, [b])
    assert second.header.prev_block_hash == block.hash


def test_account_history_is_newest_first_with_a_cursor() -> None:
    a = Node()
    hashes = []
    for nonce in range(3):
        raw = transfer_tx(1, 2, 1, nonce)
        a.mempool.add(raw)
        hashes.append(sha256(raw))
        a.clock.advance_ms(10)
        propose_and_commit(a, [])
    assert a.blocks.account_tx_hashes(key(1).address, 10, None) == hashes[::-1]
    assert a.blocks.account_tx_hashes(key(1).address, 1, (3, 0)) == [hashes[1]]


def test_block_time_is_strictly_after_the_previous_block() -> None:
    a, b = Node(), Node()
    first = propose_and_commit(a, [b])
    # The proposer's clock went backwards: it stamps previous time + 1 ms instead.
    a.clock.set_wall_ms(first.header.time_ms - 5_000)
    data, _ = a.app.propose_block(2, 0, a.clock.now_ms())
    block = a.app.decode(data)
    assert block is not None and block.header.time_ms == first.header.time_ms + 1
    # A block stamped at the previous block's time is refused.
    stale = rebuilt(b, time_ms=first.header.time_ms)
    assert not b.app.validate_block(2, stale.to_bytes())


def rebuilt(node: Node, time_ms: int) -> Block:
    """A block for the next height built by `node`'s proposer code with a chosen time (which
    `propose_block` would never choose)."""
    clock = node.clock
    saved = node.app.ledger.head
    data, _ = node.app.propose_block(saved.height + 1, 0, clock.now_ms())
    template = node.app.decode(data)
    assert template is not None
    from ledger import BlockInput

    executed = node.ledger.execute(BlockInput(saved.height + 1, time_ms, template.txs), node.verified)
    h = template.header
    return Block.build(
        chain_id=h.chain_id,
        height=h.height,
        time_ms=time_ms,
        prev_block_hash=h.prev_block_hash,
        state_root=executed.state_root,
        proposer=h.proposer,
        validators_hash=h.validators_hash,
        txs=template.txs,
    )


def test_drift_is_measured_against_the_clock_but_is_not_validity() -> None:
    a, b = Node(), Node()
    future = rebuilt(b, time_ms=b.clock.now_ms() + DRIFT_MS + 1)
    within = rebuilt(b, time_ms=b.clock.now_ms() + DRIFT_MS)
    assert b.app.ahead_of_clock_ms(future) == 1 and b.app.ahead_of_clock_ms(within) == 0
    # valid(v) does not read the clock (APP-1): the node holds a far-future proposal back instead.
    assert b.app.validate_block(1, future.to_bytes())
    # Block sync applies a decided block whatever its time.
    a.app.apply_synced(future.to_bytes(), certificate(1, future.hash).to_bytes())
    assert a.ledger.head.height == 1 and a.blocks.block_hash(1) == future.hash


def test_sync_refuses_forged_or_weak_certificates() -> None:
    a, b = Node(), Node()
    data, block_hash = a.app.propose_block(1, 0, a.clock.now_ms())
    outsiders = tuple(range(50, 54))
    cases = {
        "two of four validators": certificate(1, block_hash, VALIDATORS[:2]),
        "not validators": CommitCertificate.from_precommits([sign_vote(i, VoteKind.PRECOMMIT, 1, 0, block_hash) for i in outsiders]),
        "another block": certificate(1, sha256(b"other")),
    }
    for name, cert in cases.items():
        with pytest.raises(BlockRefused):
            b.app.apply_synced(data, cert.to_bytes())
        assert b.ledger.head.height == 0, name
    forged = certificate(1, block_hash)
    sig = forged.signatures[0]
    tampered = CommitCertificate(1, 0, block_hash, (type(sig)(sig.validator, bytes(64)),) + forged.signatures[1:])
    with pytest.raises(BlockRefused):
        b.app.apply_synced(data, tampered.to_bytes())
    with pytest.raises(BlockRefused):
        b.app.apply_synced(b"\x93garbage", forged.to_bytes())
    b.app.apply_synced(data, forged.to_bytes())
    assert b.ledger.state_root == a.app.decode(data).header.state_root  # type: ignore[union-attr]


def test_evidence_is_included_by_the_next_proposer_and_slashes() -> None:
    a, b = Node(), Node()
    propose_and_commit(a, [b])
    offender = VALIDATORS[3]
    evidence = DuplicateVoteEvidence.from_votes(
        sign_vote(offender, VoteKind.PREVOTE, 1, 0, sha256(b"x")), sign_vote(offender, VoteKind.PREVOTE, 1, 0, None)
    )
    a.evidence.add(evidence)
    a.clock.advance_ms(100)
    block = propose_and_commit(a, [b])
    assert block.evidence == (evidence,)
    for node in (a, b):
        assert key(offender).address not in node.app.validator_set(3)
        assert key(offender).address in node.app.validator_set(2)  # the set of a past height stays
        assert node.blocks.has_evidence(evidence)
        assert node.ledger.totals().slashed == STAKE * 5 // 100
    assert len(a.evidence) == 0
    # The same evidence again is refused (it was committed).
    b.evidence.add(evidence)
    data, _ = b.app.propose_block(3, 0, b.clock.now_ms() + 100)
    assert b.app.decode(data).evidence == ()  # type: ignore[union-attr]


def test_block_from_an_unknown_proposer_or_wrong_validator_set_is_refused() -> None:
    b = Node()
    outsider = Node(proposer=99)
    data, _ = outsider.app.propose_block(1, 0, outsider.clock.now_ms())
    assert not b.app.validate_block(1, data)
    assert not b.app.validate_block(1, b"not a block")
    assert b.app.block_hash(b"not a block") is None

