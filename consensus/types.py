"""Consensus values: validators, validator sets, proposals, votes and commit certificates.

Every type is a frozen dataclass that validates itself on construction, so an instance is always
well formed; `from_wire` reads a decoded msgpack value and raises `MessageInvalid` (never another
exception) on any wrong type, length, range or field. Signatures cover domain-separated sign bytes
that name the chain (see `vote_sign_bytes`, `proposal_sign_bytes`), so a vote for one chain or one
message kind can never be replayed as another.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from consensus._wire import (
    WireMessage,
    expect_bytes,
    expect_int,
    expect_list,
    expect_map,
    expect_optional_bytes,
    expect_strictly_increasing,
    expect_tuple_of,
)
from consensus.constants import (
    ADDRESS_BYTES,
    HASH_BYTES,
    MAX_CHAIN_ID_CHARS,
    MAX_HEIGHT,
    MAX_ROUND,
    MAX_TOTAL_VOTING_POWER,
    MAX_VALIDATORS,
    PROPOSAL_SIGN_DOMAIN,
    SIGNATURE_BYTES,
    VALIDATOR_SET_HASH_DOMAIN,
    VOTE_SIGN_DOMAIN,
)
from consensus.errors import CertificateInvalid, MessageInvalid
from ledger.crypto import sha256, verify_signature
from ledger.encoding import encode

__all__ = [
    "MessageInvalid",
    "CertificateInvalid",
    "Step",
    "VoteKind",
    "Validator",
    "ValidatorSet",
    "Proposal",
    "Vote",
    "CommitSignature",
    "CommitCertificate",
    "validate_chain_id",
    "vote_sign_bytes",
    "proposal_sign_bytes",
    "verify_signature_cached",
]


class Step(enum.IntEnum):
    """The steps of a round, in order. The signer guard compares (height, round, step) tuples."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class VoteKind(enum.IntEnum):
    """The two kinds of vote. Values equal the matching `Step`, and are the wire encoding."""

    PREVOTE = 1
    PRECOMMIT = 2

    @property
    def step(self) -> Step:
        return Step(self.value)


@functools.lru_cache(maxsize=8192)
def verify_signature_cached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """`ledger.crypto.verify_signature`, remembered: gossip delivers one vote many times, and a
    vote seen in gossip is seen again inside a commit certificate. A pure function, so caching it
    cannot change any result."""
    return verify_signature(public_key, message, signature)


def validate_chain_id(chain_id: Any) -> str:
    """A chain id is 1 to 64 printable characters, the rule of the genesis file. Printable excludes
    NUL, and UTF-8 never encodes another character with a 0 byte, so the NUL that ends the chain id
    in sign bytes is unambiguous."""
    if not isinstance(chain_id, str):
        raise MessageInvalid(f"chain id: expected text, got {type(chain_id).__name__}")
    if not 1 <= len(chain_id) <= MAX_CHAIN_ID_CHARS:
        raise MessageInvalid(f"chain id: 1 to {MAX_CHAIN_ID_CHARS} characters, got {len(chain_id)}")
    if not chain_id.isprintable():
        raise MessageInvalid("chain id: printable characters only")
    return chain_id


def _sign_bytes(domain: bytes, chain_id: str, fields: dict[str, Any]) -> bytes:
    return domain + validate_chain_id(chain_id).encode() + b"\x00" + encode(fields)


def vote_sign_bytes(
    chain_id: str, kind: VoteKind, height: int, round: int, block_hash: bytes | None, validator: bytes
) -> bytes:
    """What a vote signature covers: domain, chain id, NUL, canonical msgpack of the vote fields."""
    return _sign_bytes(
        VOTE_SIGN_DOMAIN,
        chain_id,
        {
            "kind": int(kind),
            "height": height,
            "round": round,
            "block_hash": block_hash,
            "validator": validator,
        },
    )


def proposal_sign_bytes(
    chain_id: str, height: int, round: int, block_hash: bytes, pol_round: int
) -> bytes:
    """What a proposal signature covers. The signer is implied: the proposer of (height, round)."""
    return _sign_bytes(
        PROPOSAL_SIGN_DOMAIN,
        chain_id,
        {"height": height, "round": round, "block_hash": block_hash, "pol_round": pol_round},
    )


def _check_height_round(height: Any, round: Any, what: str) -> None:
    expect_int(height, f"{what}.height", 1, MAX_HEIGHT)
    expect_int(round, f"{what}.round", 0, MAX_ROUND)


@dataclass(frozen=True)
class Validator(WireMessage):
    """A validator: its ed25519 public key (which is also its address) and its voting power."""

    address: bytes
    power: int

    def __post_init__(self) -> None:
        expect_bytes(self.address, "validator.address", ADDRESS_BYTES)
        expect_int(self.power, "validator.power", 1, MAX_TOTAL_VOTING_POWER)

    def to_wire(self) -> dict[str, Any]:
        return {"address": self.address, "power": self.power}

    @classmethod
    def from_wire(cls, obj: Any) -> Validator:
        m = expect_map(obj, frozenset({"address", "power"}), "validator")
        return cls(address=m["address"], power=m["power"])


@dataclass(frozen=True)
class ValidatorSet(WireMessage):
    """The validators of one height, sorted by address (strictly, so no address appears twice).

    The order is canonical so that the set has one hash and proposer selection breaks ties the same
    way on every node.
    """

    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        expect_tuple_of(self.validators, Validator, "validator set", 1, MAX_VALIDATORS)
        expect_strictly_increasing([v.address for v in self.validators], "validator set addresses")
        if sum(v.power for v in self.validators) > MAX_TOTAL_VOTING_POWER:
            raise MessageInvalid("validator set: total power too large")

    @classmethod
    def from_powers(cls, powers: dict[bytes, int]) -> ValidatorSet:
        """Build a set from address -> power, in canonical order."""
        return cls(tuple(Validator(a, p) for a, p in sorted(powers.items())))

    @cached_property
    def _by_address(self) -> dict[bytes, Validator]:
        return {v.address: v for v in self.validators}

    def __len__(self) -> int:
        return len(self.validators)

    def __contains__(self, address: object) -> bool:
        return address in self._by_address

    def get(self, address: bytes) -> Validator | None:
        return self._by_address.get(address)

    def power_of(self, address: bytes) -> int:
        """Voting power of `address`; 0 for anyone outside the set."""
        v = self._by_address.get(address)
        return 0 if v is None else v.power

    @cached_property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    @cached_property
    def quorum_power(self) -> int:
        """Smallest power strictly more than 2/3 of the total ("2f+1" of the paper, weighted)."""
        return self.total_power * 2 // 3 + 1

    @cached_property
    def round_skip_power(self) -> int:
        """Smallest power strictly more than 1/3 of the total ("f+1" of the paper, weighted): any
        group with this much power holds at least one correct validator."""
        return self.total_power // 3 + 1

    @cached_property
    def hash(self) -> bytes:
        return sha256(VALIDATOR_SET_HASH_DOMAIN + encode(self.to_wire()))

    def to_wire(self) -> list[Any]:
        return [v.to_wire() for v in self.validators]

    @classmethod
    def from_wire(cls, obj: Any) -> ValidatorSet:
        items = expect_list(obj, "validator set", MAX_VALIDATORS)
        return cls(tuple(Validator.from_wire(v) for v in items))


@dataclass(frozen=True)
class Proposal(WireMessage):
    """The proposer's signed claim: "at (height, round) I propose the block with this hash".

    `pol_round` is -1 for a fresh block, or the earlier round in which the proposer saw more than
    2/3 prevotes for this block (its proof-of-lock round, `validRound` in the paper).
    """

    height: int
    round: int
    block_hash: bytes
    pol_round: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_height_round(self.height, self.round, "proposal")
        expect_bytes(self.block_hash, "proposal.block_hash", HASH_BYTES)
        expect_int(self.pol_round, "proposal.pol_round", -1, self.round - 1)
        expect_bytes(self.signature, "proposal.signature", SIGNATURE_BYTES)

    def sign_bytes(self, chain_id: str) -> bytes:
        return proposal_sign_bytes(chain_id, self.height, self.round, self.block_hash, self.pol_round)

    def is_signed_by(self, public_key: bytes, chain_id: str) -> bool:
        return verify_signature_cached(public_key, self.sign_bytes(chain_id), self.signature)

    def to_wire(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "pol_round": self.pol_round,
            "signature": self.signature,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Proposal:
        m = expect_map(
            obj, frozenset({"height", "round", "block_hash", "pol_round", "signature"}), "proposal"
        )
        return cls(m["height"], m["round"], m["block_hash"], m["pol_round"], m["signature"])


@dataclass(frozen=True)
class Vote(WireMessage):
    """A signed prevote or precommit. `block_hash` None is a vote for nil (no block)."""

    kind: VoteKind
    height: int
    round: int
    block_hash: bytes | None
    validator: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, VoteKind):
            raise MessageInvalid("vote.kind: expected a VoteKind")
        _check_height_round(self.height, self.round, "vote")
        expect_optional_bytes(self.block_hash, "vote.block_hash", HASH_BYTES)
        expect_bytes(self.validator, "vote.validator", ADDRESS_BYTES)
        expect_bytes(self.signature, "vote.signature", SIGNATURE_BYTES)

    def sign_bytes(self, chain_id: str) -> bytes:
        return vote_sign_bytes(
            chain_id, self.kind, self.height, self.round, self.block_hash, self.validator
        )

    def is_signature_valid(self, chain_id: str) -> bool:
        """True iff the signature is the named validator's over this vote on this chain. Whether
        the validator belongs to a set is the caller's question."""
        return verify_signature_cached(self.validator, self.sign_bytes(chain_id), self.signature)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": int(self.kind),
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "validator": self.validator,
            "signature": self.signature,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Vote:
        m = expect_map(
            obj,
            frozenset({"kind", "height", "round", "block_hash", "validator", "signature"}),
            "vote",
        )
        kind = VoteKind(expect_int(m["kind"], "vote.kind", VoteKind.PREVOTE, VoteKind.PRECOMMIT))
        return cls(kind, m["height"], m["round"], m["block_hash"], m["validator"], m["signature"])


@dataclass(frozen=True)
class CommitSignature(WireMessage):
    """One validator's precommit signature inside a commit certificate."""

    validator: bytes
    signature: bytes

    def __post_init__(self) -> None:
        expect_bytes(self.validator, "commit signature.validator", ADDRESS_BYTES)
        expect_bytes(self.signature, "commit signature.signature", SIGNATURE_BYTES)

    def to_wire(self) -> dict[str, Any]:
        return {"validator": self.validator, "signature": self.signature}

    @classmethod
    def from_wire(cls, obj: Any) -> CommitSignature:
        m = expect_map(obj, frozenset({"validator", "signature"}), "commit signature")
        return cls(m["validator"], m["signature"])


@dataclass(frozen=True)
class CommitCertificate(WireMessage):
    """Proof that a block was decided: precommits for it at one (height, round) from validators
    holding more than 2/3 of the voting power. Signatures are sorted by validator address."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSignature, ...]

    def __post_init__(self) -> None:
        _check_height_round(self.height, self.round, "certificate")
        expect_bytes(self.block_hash, "certificate.block_hash", HASH_BYTES)
        expect_tuple_of(self.signatures, CommitSignature, "certificate.signatures", 1, MAX_VALIDATORS)
        expect_strictly_increasing([s.validator for s in self.signatures], "certificate signers")

    @classmethod
    def from_precommits(cls, precommits: list[Vote] | tuple[Vote, ...]) -> CommitCertificate:
        """Collect precommits for one block at one (height, round) into a certificate."""
        if not precommits:
            raise MessageInvalid("certificate: no precommits")
        first = precommits[0]
        for v in precommits:
            if (v.kind, v.height, v.round, v.block_hash) != (
                VoteKind.PRECOMMIT,
                first.height,
                first.round,
                first.block_hash,
            ):
                raise MessageInvalid("certificate: precommits disagree")
        if first.block_hash is None:
            raise MessageInvalid("certificate: nil cannot be committed")
        sigs = sorted((CommitSignature(v.validator, v.signature) for v in precommits),
                      key=lambda s: s.validator)
        return cls(first.height, first.round, first.block_hash, tuple(sigs))

    def precommits(self) -> tuple[Vote, ...]:
        """The signed precommit votes this certificate carries, e.g. to feed a lagging engine."""
        return tuple(
            Vote(VoteKind.PRECOMMIT, self.height, self.round, self.block_hash, s.validator, s.signature)
            for s in self.signatures
        )

    def verify(self, validator_set: ValidatorSet, chain_id: str) -> None:
        """Raise `CertificateInvalid` unless every signer is in `validator_set`, every signature
        is a valid precommit for this block on `chain_id`, and the signers hold more than 2/3 of
        the set's power. `validator_set` must be the set of `self.height`; that is the caller's."""
        power = 0
        for vote in self.precommits():
            member = validator_set.get(vote.validator)
            if member is None:
                raise CertificateInvalid(f"certificate: signer {vote.validator.hex()} not in the set")
            if not vote.is_signature_valid(chain_id):
                raise CertificateInvalid(f"certificate: bad signature by {vote.validator.hex()}")
            power += member.power
        if power < validator_set.quorum_power:
            raise CertificateInvalid(
                f"certificate: power {power} is below the quorum {validator_set.quorum_power}"
            )

    def to_wire(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "signatures": [s.to_wire() for s in self.signatures],
        }

    @classmethod
    def from_wire(cls, obj: Any) -> CommitCertificate:
        m = expect_map(obj, frozenset({"height", "round", "block_hash", "signatures"}), "certificate")
        sigs = expect_list(m["signatures"], "certificate.signatures", MAX_VALIDATORS)
        return cls(
            m["height"], m["round"], m["block_hash"], tuple(CommitSignature.from_wire(s) for s in sigs)
        )
