"""consensus.engine, step by step through the paper's rules (line numbers of Algorithm 1).

Four validators of power 1 (quorum 3, round skip 2). The test plays the other three.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.engine import (
    BlockReceived,
    Broadcast,
    Commit,
    ProposalReceived,
    ScheduleTimeout,
    Start,
    TimeoutFired,
    VoteReceived,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.signer import NO_LOCK, Lock
from consensus.testing import sign_proposal, sign_vote
from consensus.types import Step, VoteKind
from tests.consensus.engine_driver import (
    CHAIN,
    KEYS,
    PRECOMMIT,
    PREVOTE,
    TIMEOUTS,
    VSET,
    Driver,
    blocks,
    commits,
    evidence,
    non_proposer_index,
    proposals,
    proposer_key,
    timeouts,
    votes,
)

H = 1


def started(me: int | None) -> Driver:
    d = Driver(me)
    d.feed(Start(H))
    return d


def test_start_arms_the_propose_timeout_of_round_zero() -> None:
    d = Driver(non_proposer_index(H, 0))
    actions = d.feed(Start(H))
    assert timeouts(actions) == [ScheduleTimeout(H, 0, Step.PROPOSE, TIMEOUTS.propose_ms)]
    assert votes(actions) == [] and proposals(actions) == []
    assert (d.engine.height, d.engine.round, d.engine.step) == (H, 0, Step.PROPOSE)


def test_proposer_broadcasts_block_and_proposal_and_prevotes_its_block() -> None:
    me = KEYS.index(proposer_key(H, 0))
    d = Driver(me)
    actions = d.feed(Start(H))
    [block] = blocks(actions)
    [proposal] = proposals(actions)
    assert proposal.block_hash == block.block_hash and proposal.pol_round == -1
    assert proposal.is_signed_by(KEYS[me].public_key, CHAIN)
    [prevote] = votes(actions, PREVOTE)
    assert prevote.block_hash == block.block_hash and prevote.is_signature_valid(CHAIN)


def test_happy_path_prevote_precommit_commit() -> None:
    """Lines 22, 36, 49: a valid proposal gets prevoted, a polka locks and precommits, more
    than 2/3 precommits commit with a certificate that verifies."""
    d = started(non_proposer_index(H, 0))
    actions, b = d.propose(H, 0)
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [b]

    others = [KEYS.index(k) for k in KEYS if k is not d.me]
    actions = d.votes_from(PREVOTE, H, 0, b, others[0])
    assert votes(actions) == []  # 2 of 4 prevotes: no quorum yet
    actions = d.votes_from(PREVOTE, H, 0, b, others[1])
    assert [v.block_hash for v in votes(actions, PRECOMMIT)] == [b]
    assert d.engine.lock == Lock(0, b) and d.engine.valid_round == 0
    assert ScheduleTimeout(H, 0, Step.PREVOTE, TIMEOUTS.prevote_ms) in timeouts(actions)  # line 34

    assert commits(d.votes_from(PRECOMMIT, H, 0, b, others[0])) == []
    [commit] = commits(d.votes_from(PRECOMMIT, H, 0, b, others[1]))
    assert (commit.height, commit.round, commit.block_hash) == (H, 0, b)
    commit.certificate.verify(VSET, CHAIN)
    assert len(commit.certificate.signatures) == 3
    assert d.engine.decided


def test_invalid_proposal_gets_a_nil_prevote() -> None:
    """Line 26: valid(v) is false, so prevote nil."""
    d = started(non_proposer_index(H, 0))
    actions, b = d.propose(H, 0, note=b"invalid: pays twice")
    [prevote] = votes(actions, PREVOTE)
    assert prevote.block_hash is None
    # even a polka for the invalid block is never precommitted
    actions = d.votes_from(PREVOTE, H, 0, b, *d.others(3))
    assert votes(actions, PRECOMMIT) == [] and d.engine.lock == NO_LOCK


def test_proposal_from_the_wrong_proposer_is_ignored() -> None:
    d = started(non_proposer_index(H, 0))
    impostor = next(k for k in KEYS if k is not proposer_key(H, 0) and k is not d.me)
    data, b = d.app.make_block(H, 0, impostor.public_key)
    actions = d.feed(BlockReceived(H, data), ProposalReceived(sign_proposal(impostor, CHAIN, H, 0, b)))
    assert votes(actions) == [] and d.engine.step is Step.PROPOSE


def test_proposal_waits_for_its_block() -> None:
    d = started(non_proposer_index(H, 0))
    author = proposer_key(H, 0)
    data, b = d.app.make_block(H, 0, author.public_key)
    assert votes(d.feed(ProposalReceived(sign_proposal(author, CHAIN, H, 0, b)))) == []
    assert [v.block_hash for v in votes(d.feed(BlockReceived(H, data)))] == [b]


def test_timeouts_lead_to_nil_votes_and_the_next_round() -> None:
    """Lines 57, 34 + 61, 47 + 65: no proposal, mixed prevotes, then the next round."""
    d = started(non_proposer_index(H, 0, 1))
    a, b, c = d.others(3)
    [prevote] = votes(d.feed(TimeoutFired(H, 0, Step.PROPOSE)))
    assert prevote.kind is PREVOTE and prevote.block_hash is None

    d.votes_from(PREVOTE, H, 0, b"\x01" * 32, a)
    actions = d.votes_from(PREVOTE, H, 0, b"\x02" * 32, b)  # 3 prevotes, no value has 3
    assert timeouts(actions) == [ScheduleTimeout(H, 0, Step.PREVOTE, TIMEOUTS.prevote_ms)]
    assert votes(actions) == []

    [precommit] = votes(d.feed(TimeoutFired(H, 0, Step.PREVOTE)))
    assert precommit.kind is PRECOMMIT and precommit.block_hash is None

    d.votes_from(PRECOMMIT, H, 0, None, a)
    actions = d.votes_from(PRECOMMIT, H, 0, b"\x01" * 32, c)
    assert timeouts(actions) == [ScheduleTimeout(H, 0, Step.PRECOMMIT, TIMEOUTS.precommit_ms)]

    actions = d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    assert (d.engine.round, d.engine.step) == (1, Step.PROPOSE)
    assert timeouts(actions) == [
        ScheduleTimeout(H, 1, Step.PROPOSE, TIMEOUTS.propose_ms + TIMEOUTS.propose_delta_ms)
    ]


def test_timeouts_grow_linearly_with_the_round() -> None:
    d = started(non_proposer_index(H, 0, 1, 2))
    for r in range(3):
        d.feed(TimeoutFired(H, r, Step.PROPOSE))
        d.votes_from(PREVOTE, H, r, b"\x01" * 32, *d.others(2))
        d.feed(TimeoutFired(H, r, Step.PREVOTE))
        d.votes_from(PRECOMMIT, H, r, b"\x01" * 32, *d.others(2))
        d.feed(TimeoutFired(H, r, Step.PRECOMMIT))
    scheduled = {(t.round, t.step): t.duration_ms for t in timeouts(d.log)}
    for r in range(3):
        assert scheduled[(r, Step.PROPOSE)] == 300 + 100 * r
        assert scheduled[(r, Step.PREVOTE)] == 200 + 50 * r
        assert scheduled[(r, Step.PRECOMMIT)] == 200 + 50 * r


def test_stale_timeouts_do_nothing() -> None:
    d = started(non_proposer_index(H, 0))
    assert d.feed(TimeoutFired(H, 3, Step.PROPOSE), TimeoutFired(H + 1, 0, Step.PROPOSE)) == []
    assert d.feed(TimeoutFired(H, 0, Step.PREVOTE)) == []  # not in the prevote step
    assert d.engine.step is Step.PROPOSE


def test_polka_for_nil_precommits_nil() -> None:
    """Line 44."""
    d = started(non_proposer_index(H, 0))
    d.feed(TimeoutFired(H, 0, Step.PROPOSE))
    actions = d.votes_from(PREVOTE, H, 0, None, *d.others(2))
    assert [(v.kind, v.block_hash) for v in votes(actions)] == [(PRECOMMIT, None)]
    assert d.engine.lock == NO_LOCK


def test_lock_makes_a_validator_prevote_nil_for_another_block() -> None:
    """Line 23: locked on B0 at round 0, a fresh proposal of B1 at round 1 gets a nil prevote."""
    d = started(non_proposer_index(H, 0, 1))
    a, b, _ = d.others(3)
    _, b0 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b0, a, b)
    assert d.engine.lock == Lock(0, b0)
    d.votes_from(PRECOMMIT, H, 0, None, a, b)
    d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))

    actions, b1 = d.propose(H, 1)
    assert b1 != b0
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [None]


def test_locked_validator_prevotes_its_locked_block_when_proposed_again() -> None:
    d = started(non_proposer_index(H, 0, 1))
    a, b, _ = d.others(3)
    _, b0 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b0, a, b)
    d.votes_from(PRECOMMIT, H, 0, None, a, b)
    d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    block0 = d.engine._state().blocks[b0]
    actions, _ = d.propose(H, 1, pol_round=0, block=(block0, b0))
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [b0]


def test_polka_in_a_later_round_unlocks() -> None:
    """Line 28-30: locked at round 0, a proposal with pol_round 1 > lockedRound and a polka at
    round 1 for its block gets our prevote."""
    d = started(non_proposer_index(H, 0, 1, 2))
    a, b, c = d.others(3)
    _, b0 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b0, a, b)
    d.votes_from(PRECOMMIT, H, 0, None, a, b)
    d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))

    # Round 1: we miss the proposal, time out, and precommit nil; the others form a polka for B1.
    author1 = proposer_key(H, 1)
    block1, b1 = d.app.make_block(H, 1, author1.public_key)
    d.feed(TimeoutFired(H, 1, Step.PROPOSE))
    d.votes_from(PREVOTE, H, 1, b1, a, b, c)
    d.feed(TimeoutFired(H, 1, Step.PREVOTE))
    d.votes_from(PRECOMMIT, H, 1, None, a, b)
    d.feed(TimeoutFired(H, 1, Step.PRECOMMIT))
    assert d.engine.lock == Lock(0, b0)

    actions, _ = d.propose(H, 2, pol_round=1, block=(block1, b1))
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [b1]


def test_reproposal_without_its_polka_waits_then_prevotes_nil_on_timeout() -> None:
    d = started(non_proposer_index(H, 1))
    d.feed(TimeoutFired(H, 0, Step.PROPOSE))
    d.votes_from(PREVOTE, H, 0, None, *d.others(2))
    d.votes_from(PRECOMMIT, H, 0, None, *d.others(2))
    d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    actions, _ = d.propose(H, 1, pol_round=0)
    assert votes(actions) == []  # line 28 needs 2/3 prevotes at pol_round 0 for this block
    [prevote] = votes(d.feed(TimeoutFired(H, 1, Step.PROPOSE)))
    assert prevote.block_hash is None


def test_locked_at_a_later_round_than_pol_round_prevotes_nil() -> None:
    """Line 29-32: lockedRound 1 > vr 0 and another block: nil."""
    d = started(non_proposer_index(H, 0, 1, 2))
    a, b, c = d.others(3)
    block0, b0 = d.app.make_block(H, 0, proposer_key(H, 0).public_key)
    d.feed(TimeoutFired(H, 0, Step.PROPOSE))
    d.votes_from(PREVOTE, H, 0, b0, a, b, c)  # a polka for B0 at round 0 that we did not lock on
    d.feed(TimeoutFired(H, 0, Step.PREVOTE))
    d.votes_from(PRECOMMIT, H, 0, None, a, b)
    d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    _, b1 = d.propose(H, 1)
    d.votes_from(PREVOTE, H, 1, b1, a, b)
    assert d.engine.lock == Lock(1, b1)
    d.votes_from(PRECOMMIT, H, 1, None, a, b)
    d.feed(TimeoutFired(H, 1, Step.PRECOMMIT))

    actions, _ = d.propose(H, 2, pol_round=0, block=(block0, b0))
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [None]


def test_late_polka_sets_the_valid_block_which_the_proposer_proposes_again() -> None:
    """Lines 36-43 in the precommit step, then lines 15-16: validValue is re-proposed with
    validRound as its pol_round, and no lock is taken."""
    me = KEYS.index(proposer_key(H, 1))
    d = Driver(me)
    d.feed(Start(H))
    others = d.others(3)
    author0 = proposer_key(H, 0)
    block0, b0 = d.app.make_block(H, 0, author0.public_key)
    supporters = [i for i in others if KEYS[i] is not author0][:1] + [KEYS.index(author0)]
    d.votes_from(PREVOTE, H, 0, b0, *supporters)
    d.feed(TimeoutFired(H, 0, Step.PROPOSE))  # we prevote nil: 3 prevotes, no quorum for a value
    [precommit] = votes(d.feed(TimeoutFired(H, 0, Step.PREVOTE)))
    assert precommit.block_hash is None

    third = next(i for i in others if i not in supporters)
    d.feed(BlockReceived(H, block0), ProposalReceived(sign_proposal(author0, CHAIN, H, 0, b0)))
    d.votes_from(PREVOTE, H, 0, b0, third)
    assert d.engine.valid_round == 0 and d.engine.lock == NO_LOCK

    d.votes_from(PRECOMMIT, H, 0, None, *others[:2])
    actions = d.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    [proposal] = proposals(actions)
    assert (proposal.round, proposal.block_hash, proposal.pol_round) == (1, b0, 0)


def test_messages_from_more_than_a_third_in_a_later_round_skip_to_it() -> None:
    """Line 55."""
    d = started(non_proposer_index(H, 0, 5))
    a, b, _ = d.others(3)
    d.votes_from(PREVOTE, H, 5, None, a)
    assert d.engine.round == 0  # 1 of 4 is not more than 1/3
    actions = d.votes_from(PRECOMMIT, H, 5, None, b)
    assert d.engine.round == 5 and d.engine.step is Step.PROPOSE
    assert ScheduleTimeout(H, 5, Step.PROPOSE, 300 + 5 * 100) in timeouts(actions)


def test_two_messages_from_one_validator_do_not_skip_a_round() -> None:
    d = started(non_proposer_index(H, 0))
    a = d.others(1)[0]
    d.votes_from(PREVOTE, H, 4, None, a)
    d.votes_from(PRECOMMIT, H, 4, None, a)
    assert d.engine.round == 0


def test_messages_too_far_ahead_are_dropped() -> None:
    d = started(non_proposer_index(H, 0))
    d.votes_from(PREVOTE, H, 500, None, *d.others(3))
    assert d.engine.round == 0


def test_duplicate_votes_count_once() -> None:
    d = started(non_proposer_index(H, 0))
    _, b = d.propose(H, 0)
    a, b2, _ = d.others(3)
    vote = sign_vote(KEYS[a], CHAIN, PREVOTE, H, 0, b)
    assert votes(d.feed(VoteReceived(vote), VoteReceived(vote), VoteReceived(vote))) == []
    assert [v.kind for v in votes(d.votes_from(PREVOTE, H, 0, b, b2))] == [PRECOMMIT]


def test_votes_with_bad_signatures_or_from_outsiders_are_ignored() -> None:
    from consensus.testing import keypairs
    from consensus.types import Vote

    d = started(non_proposer_index(H, 0))
    _, b = d.propose(H, 0)
    a, c, _ = d.others(3)
    outsider = keypairs(1, tag=b"outsider")[0]
    good = sign_vote(KEYS[a], CHAIN, PREVOTE, H, 0, b)
    forged = Vote(PREVOTE, H, 0, b, KEYS[c].public_key, good.signature)
    other_chain = sign_vote(KEYS[c], "other-chain", PREVOTE, H, 0, b)
    actions = d.feed(
        VoteReceived(good),
        VoteReceived(forged),
        VoteReceived(other_chain),
        VoteReceived(sign_vote(outsider, CHAIN, PREVOTE, H, 0, b)),
    )
    assert votes(actions) == [] and evidence(actions) == []
    assert [v.kind for v in votes(d.votes_from(PREVOTE, H, 0, b, c))] == [PRECOMMIT]


def test_equivocation_yields_evidence_once() -> None:
    d = started(non_proposer_index(H, 0))
    _, b = d.propose(H, 0)
    a = d.others(1)[0]
    d.votes_from(PREVOTE, H, 0, b, a)
    actions = d.votes_from(PREVOTE, H, 0, None, a)
    [found] = evidence(actions)
    assert isinstance(found.evidence, DuplicateVoteEvidence)
    found.evidence.verify(VSET, CHAIN)
    assert found.evidence.validator == KEYS[a].public_key
    assert evidence(d.votes_from(PREVOTE, H, 0, b"\x09" * 32, a)) == []  # reported once


def test_an_equivocator_counts_once_towards_any_and_once_towards_each_value() -> None:
    """As the paper counts messages: its votes for nil and for B both count, but its power
    counts once towards "more than 2/3 for anything" (line 34)."""
    d = started(non_proposer_index(H, 0))
    _, b = d.propose(H, 0)  # we prevote B
    a, c, _ = d.others(3)
    actions = d.votes_from(PREVOTE, H, 0, None, a) + d.votes_from(PREVOTE, H, 0, b"\x09" * 32, a)
    assert timeouts(actions) == []  # we and a: 2 of 4 have voted, however many votes a sent
    actions = d.votes_from(PREVOTE, H, 0, b, a)  # a's third vote, for B
    assert votes(actions) == []  # B has we and a: 2 of 4
    actions = d.votes_from(PREVOTE, H, 0, b, c)
    assert [(v.kind, v.block_hash) for v in votes(actions)] == [(PRECOMMIT, b)]


def test_a_late_commit_of_an_earlier_round_is_decided() -> None:
    """Line 49 holds for any round r, not only the current one."""
    d = started(non_proposer_index(H, 0, 1))
    a, b, c = d.others(3)
    _, b0 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b0, a, b)  # we lock on B0 and precommit it
    d.votes_from(PREVOTE, H, 1, None, a, c)  # a and c are in round 1: skip there
    assert d.engine.round == 1
    assert commits(d.votes_from(PRECOMMIT, H, 0, b0, a)) == []
    [commit] = commits(d.votes_from(PRECOMMIT, H, 0, b0, b))
    assert (commit.round, commit.block_hash) == (0, b0)
    commit.certificate.verify(VSET, CHAIN)


def test_commit_from_a_certificate_without_the_proposal() -> None:
    """What block sync feeds a lagging node: the block and the certificate's precommits."""
    d = started(non_proposer_index(H, 0))
    author = proposer_key(H, 0)
    block, b = d.app.make_block(H, 0, author.public_key)
    precommits = [sign_vote(KEYS[i], CHAIN, PRECOMMIT, H, 0, b) for i in d.others(3)]
    d.feed(*(VoteReceived(v) for v in precommits))
    assert commits(d.log) == []
    [commit] = commits(d.feed(BlockReceived(H, block)))
    assert commit.block == block
    commit.certificate.verify(VSET, CHAIN)


def test_a_commit_for_an_invalid_block_is_not_taken() -> None:
    d = started(non_proposer_index(H, 0))
    block, b = d.app.make_block(H, 0, proposer_key(H, 0).public_key, note=b"invalid")
    d.feed(BlockReceived(H, block))
    assert commits(d.votes_from(PRECOMMIT, H, 0, b, *d.others(3))) == []
    assert not d.engine.decided


def test_observer_decides_without_ever_signing() -> None:
    d = started(None)
    assert proposals(d.log) == [] and blocks(d.log) == []
    _, b = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b, 0, 1, 2)
    [commit] = commits(d.votes_from(PRECOMMIT, H, 0, b, 1, 2, 3))
    assert commit.block_hash == b
    assert not any(isinstance(a, Broadcast) for a in d.log)


def test_next_height_messages_are_held_until_it_starts() -> None:
    author2 = proposer_key(H + 1, 0)
    d = started(next(i for i, k in enumerate(KEYS) if k not in (proposer_key(H, 0), author2)))
    _, b = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b, *d.others(3))
    [commit] = commits(d.votes_from(PRECOMMIT, H, 0, b, *d.others(3)))

    d.app.commit(H, commit.block_hash)
    block2, b2 = d.app.make_block(H + 1, 0, author2.public_key)
    proposal2 = sign_proposal(author2, CHAIN, H + 1, 0, b2)
    early = d.feed(BlockReceived(H + 1, block2), ProposalReceived(proposal2))
    assert votes(early) == []
    actions = d.feed(Start(H + 1))
    assert [(v.height, v.block_hash) for v in votes(actions, PREVOTE)] == [(H + 1, b2)]


def test_a_restarted_validator_never_signs_a_conflicting_vote_and_keeps_its_lock() -> None:
    me = non_proposer_index(H, 0, 1)
    d = started(me)
    a, b, _ = d.others(3)
    _, b0 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b0, a, b)
    assert d.engine.lock == Lock(0, b0)

    # crash: a new engine on the same guard (the node's persisted signer state) and the same app
    restarted = Driver(me, guard=d.guard, app=d.app)
    restarted.feed(Start(H))
    assert (restarted.engine.round, restarted.engine.lock) == (0, Lock(0, b0))
    restarted.feed(TimeoutFired(H, 0, Step.PROPOSE))  # would prevote nil: refused
    restarted.votes_from(PREVOTE, H, 0, None, a, b)  # nil polka would precommit nil: refused
    restarted.votes_from(PRECOMMIT, H, 0, None, a, b)
    restarted.feed(TimeoutFired(H, 0, Step.PRECOMMIT))
    actions, b1 = restarted.propose(H, 1)
    assert [v.block_hash for v in votes(actions, PREVOTE)] == [None]  # the lock survived

    signed: dict[tuple[int, int, VoteKind], set[bytes | None]] = {}
    for v in votes(d.log) + votes(restarted.log):
        signed.setdefault((v.height, v.round, v.kind), set()).add(v.block_hash)
    assert all(len(hashes) == 1 for hashes in signed.values()), signed
    assert signed[(H, 0, PREVOTE)] == {b0} and signed[(H, 0, PRECOMMIT)] == {b0}


def test_a_restarted_validator_resends_the_identical_vote_and_counts_it_once() -> None:
    me = non_proposer_index(H, 0)
    d = started(me)
    actions, b = d.propose(H, 0)
    [before] = votes(actions)
    restarted = Driver(me, guard=d.guard, app=d.app)
    restarted.feed(Start(H), VoteReceived(before))  # it hears its own pre-crash vote back
    actions, _ = restarted.propose(H, 0)
    assert votes(actions) == [before]
    assert votes(restarted.votes_from(PREVOTE, H, 0, b, d.others(1)[0])) == []  # 2 of 4, not 3


def test_start_of_an_old_height_is_ignored() -> None:
    d = started(non_proposer_index(H, 0))
    assert d.feed(Start(H)) == [] and d.feed(Start(0)) == []
    assert d.engine.height == H


def test_same_events_give_the_same_actions() -> None:
    def run() -> list[object]:
        d = started(non_proposer_index(H, 0))
        _, b = d.propose(H, 0)
        d.votes_from(PREVOTE, H, 0, b, *d.others(3))
        d.votes_from(PRECOMMIT, H, 0, b, *d.others(3))
        return d.log

    first = run()
    assert first == run() and any(isinstance(a, Commit) for a in first)


def test_equivocation_in_the_height_just_decided_is_still_reported() -> None:
    """Gossip delivers late votes; an equivocation seen after the decision is evidence too."""
    author2 = proposer_key(H + 1, 0)
    d = started(next(i for i, k in enumerate(KEYS) if k not in (proposer_key(H, 0), author2)))
    a, b, c = d.others(3)
    _, b1 = d.propose(H, 0)
    d.votes_from(PREVOTE, H, 0, b1, a, b)
    [commit] = commits(d.votes_from(PRECOMMIT, H, 0, b1, a, b))
    assert evidence(d.votes_from(PREVOTE, H, 0, None, a)) != []  # decided, not yet started H + 1
    d.app.commit(H, commit.block_hash)
    d.feed(Start(H + 1))
    d.votes_from(PREVOTE, H, 0, b1, c)
    [found] = evidence(d.votes_from(PREVOTE, H, 0, None, c))  # after H + 1 started
    assert found.evidence.validator == KEYS[c].public_key and found.evidence.height == H
    assert d.feed(Start(H + 2)) and evidence(d.votes_from(PREVOTE, H, 0, None, b)) == []  # 2 back


# --- Any order of signed messages and timeouts -----------------------------------------------

_ME = non_proposer_index(H, 0)
_APP = Driver(None).app
_BLOCKS = [_APP.make_block(H, r, proposer_key(H, r).public_key) for r in range(3)]
_VALUES: list[bytes | None] = [None] + [b for _, b in _BLOCKS]
_POOL: list[object] = [BlockReceived(H, block) for block, _ in _BLOCKS]
_POOL += [
    ProposalReceived(sign_proposal(proposer_key(H, r), CHAIN, H, r, _BLOCKS[v][1], pol))
    for r in range(3) for v in range(3) for pol in range(-1, r)
]
_POOL += [
    VoteReceived(sign_vote(KEYS[i], CHAIN, kind, H, r, value))
    for i in range(4) if i != _ME for kind in (PREVOTE, PRECOMMIT) for r in range(3) for value in _VALUES
]
_POOL += [TimeoutFired(H, r, step) for r in range(3) for step in Step]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(_POOL) - 1), max_size=60))
def test_any_sequence_of_events_keeps_the_engine_consistent(picks: list[int]) -> None:
    """Whatever arrives in whatever order (including equivocations): the engine never raises,
    signs at most one vote per (round, kind), locks only on what it precommitted, and commits
    at most once, with a certificate that verifies for a block it holds."""
    d = started(_ME)
    for i in picks:
        d.feed(_POOL[i])  # type: ignore[arg-type]
    mine: dict[tuple[int, VoteKind], bytes | None] = {}
    for v in votes(d.log):
        assert mine.setdefault((v.round, v.kind), v.block_hash) == v.block_hash
    if d.engine.lock.round >= 0:
        assert mine[(d.engine.lock.round, PRECOMMIT)] == d.engine.lock.block_hash
    found = commits(d.log)
    assert len(found) <= 1
    for commit in found:
        commit.certificate.verify(VSET, CHAIN)
        assert commit.block_hash in {b for _, b in _BLOCKS}
