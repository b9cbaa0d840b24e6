"""Evidence of equivocation: two validly signed, conflicting votes from one validator.

A correct validator signs at most one vote per (height, round, kind) (its signer guard enforces
it), so two such votes for different blocks prove the validator faulty. The pair is stored in a
canonical order (the vote for the smaller block hash first, nil before any hash) so that the same
misbehaviour has exactly one encoding and one identity, whichever order it was seen in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus._wire import WireMessage, expect_map
from consensus.errors import EvidenceInvalid, MessageInvalid
from consensus.types import ValidatorSet, Vote

__all__ = ["DuplicateVoteEvidence", "EvidenceInvalid"]


def _order_key(vote: Vote) -> bytes:
    return b"" if vote.block_hash is None else vote.block_hash


@dataclass(frozen=True)
class DuplicateVoteEvidence(WireMessage):
    vote_a: Vote
    vote_b: Vote

    def __post_init__(self) -> None:
        a, b = self.vote_a, self.vote_b
        if not isinstance(a, Vote) or not isinstance(b, Vote):
            raise MessageInvalid("duplicate vote evidence: expected two votes")
        if (a.validator, a.height, a.round, a.kind) != (b.validator, b.height, b.round, b.kind):
            raise MessageInvalid(
                "duplicate vote evidence: votes differ in validator, height, round or kind"
            )
        if not _order_key(a) < _order_key(b):
            raise MessageInvalid(
                "duplicate vote evidence: block hashes must differ and be in canonical order"
            )

    @classmethod
    def from_votes(cls, first: Vote, second: Vote) -> DuplicateVoteEvidence:
        """Evidence from two conflicting votes given in either order."""
        a, b = sorted((first, second), key=_order_key)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def verify(self, validator_set: ValidatorSet, chain_id: str) -> None:
        """Raise `EvidenceInvalid` unless the validator is in `validator_set` (the set of the
        votes' height) and both votes carry its valid signature on `chain_id`."""
        if self.validator not in validator_set:
            raise EvidenceInvalid(
                f"duplicate vote evidence: {self.validator.hex()} is not in the validator set"
            )
        for vote in (self.vote_a, self.vote_b):
            if not vote.is_signature_valid(chain_id):
                raise EvidenceInvalid("duplicate vote evidence: a signature does not verify")

    def to_wire(self) -> dict[str, Any]:
        return {"vote_a": self.vote_a.to_wire(), "vote_b": self.vote_b.to_wire()}

    @classmethod
    def from_wire(cls, obj: Any) -> DuplicateVoteEvidence:
        m = expect_map(obj, frozenset({"vote_a", "vote_b"}), "duplicate vote evidence")
        return cls(Vote.from_wire(m["vote_a"]), Vote.from_wire(m["vote_b"]))
