"""consensus.evidence: DuplicateVoteEvidence is canonical and verifies strictly."""

from __future__ import annotations

import pytest

from consensus.errors import EvidenceInvalid, MessageInvalid
from consensus.evidence import DuplicateVoteEvidence
from consensus.testing import keypairs, sign_vote, validator_set_of
from consensus.types import Vote, VoteKind

CHAIN = "hearth-test"
KEYS = keypairs(4)
VSET = validator_set_of(KEYS)
A, B = b"\x0a" * 32, b"\x0b" * 32


def vote(block_hash: bytes | None, key: int = 0, kind: VoteKind = VoteKind.PREVOTE,
         height: int = 9, round: int = 2, chain: str = CHAIN) -> Vote:
    return sign_vote(KEYS[key], chain, kind, height, round, block_hash)


@pytest.mark.parametrize("first, second", [(A, B), (B, A), (None, A), (B, None)])
def test_two_conflicting_votes_make_one_canonical_evidence(
    first: bytes | None, second: bytes | None
) -> None:
    ev = DuplicateVoteEvidence.from_votes(vote(first), vote(second))
    ev.verify(VSET, CHAIN)
    assert ev == DuplicateVoteEvidence.from_votes(vote(second), vote(first))
    assert ev.validator == KEYS[0].public_key and ev.height == 9
    assert DuplicateVoteEvidence.from_bytes(ev.to_bytes()) == ev
    assert (ev.vote_a.block_hash or b"") < (ev.vote_b.block_hash or b"")


@pytest.mark.parametrize(
    "other",
    [
        vote(A),  # the same vote is no conflict
        vote(B, key=1),
        vote(B, kind=VoteKind.PRECOMMIT),
        vote(B, height=10),
        vote(B, round=3),
    ],
)
def test_votes_that_do_not_conflict_are_not_evidence(other: Vote) -> None:
    with pytest.raises(MessageInvalid):
        DuplicateVoteEvidence.from_votes(vote(A), other)


def test_non_canonical_order_is_rejected_on_the_wire() -> None:
    ev = DuplicateVoteEvidence.from_votes(vote(A), vote(B))
    with pytest.raises(MessageInvalid, match="canonical"):
        DuplicateVoteEvidence.from_wire({"vote_a": ev.vote_b.to_wire(), "vote_b": ev.vote_a.to_wire()})


def test_a_forged_vote_is_not_evidence() -> None:
    real = vote(A)
    forged = Vote(real.kind, real.height, real.round, B, real.validator, real.signature)
    with pytest.raises(EvidenceInvalid, match="signature"):
        DuplicateVoteEvidence.from_votes(real, forged).verify(VSET, CHAIN)


def test_votes_of_another_chain_are_not_evidence_here() -> None:
    ev = DuplicateVoteEvidence.from_votes(vote(A, chain="other"), vote(B, chain="other"))
    with pytest.raises(EvidenceInvalid):
        ev.verify(VSET, CHAIN)


def test_a_validator_outside_the_set_is_not_accountable() -> None:
    ev = DuplicateVoteEvidence.from_votes(vote(A), vote(B))
    with pytest.raises(EvidenceInvalid, match="not in the validator set"):
        ev.verify(validator_set_of(KEYS[1:]), CHAIN)
