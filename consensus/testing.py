"""Test toolkit shipped beside the engine: deterministic keys, message signing, a hash-chain app.

Used by tests/consensus and tests/simulation, and available to anyone testing code built on the
engine. Nothing here is used by the engine itself.
"""

from __future__ import annotations

from typing import Any

from consensus.types import (
    Proposal,
    ValidatorSet,
    Vote,
    VoteKind,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from ledger.crypto import Keypair, sha256
from ledger.encoding import EncodingError, decode_canonical, encode

_BLOCK_FIELDS = {"height", "prev", "proposer", "round", "note"}

__all__ = ["keypairs", "validator_set_of", "sign_vote", "sign_proposal", "HashChainApp"]


def keypairs(count: int, tag: bytes = b"") -> list[Keypair]:
    """`count` keypairs derived from their index (and `tag`), sorted by address like a set."""
    seeds = (sha256(b"hearth-test-key" + tag + i.to_bytes(4, "big")) for i in range(count))
    keys = [Keypair.from_seed(seed) for seed in seeds]
    return sorted(keys, key=lambda k: k.public_key)


def validator_set_of(keys: list[Keypair], powers: list[int] | None = None) -> ValidatorSet:
    powers = powers or [1] * len(keys)
    return ValidatorSet.from_powers({k.public_key: p for k, p in zip(keys, powers)})


def sign_vote(
    key: Keypair,
    chain_id: str,
    kind: VoteKind,
    height: int,
    round: int,
    block_hash: bytes | None,
) -> Vote:
    sign_bytes = vote_sign_bytes(chain_id, kind, height, round, block_hash, key.public_key)
    return Vote(kind, height, round, block_hash, key.public_key, key.sign(sign_bytes))


def sign_proposal(
    key: Keypair, chain_id: str, height: int, round: int, block_hash: bytes, pol_round: int = -1
) -> Proposal:
    sign_bytes = proposal_sign_bytes(chain_id, height, round, block_hash, pol_round)
    return Proposal(height, round, block_hash, pol_round, key.sign(sign_bytes))


class HashChainApp:
    """The simplest deterministic `Application`: a block names its height, its parent's hash, who
    built it, in which round, and a free `note`. It is valid iff it decodes canonically, follows
    the committed chain, was built by a validator, and its note does not start with b"invalid"."""

    GENESIS = bytes(32)

    def __init__(self, validators: ValidatorSet, address: bytes | None = None) -> None:
        self.validators = validators
        self.address = address if address is not None else validators.validators[0].address
        self.chain: list[bytes] = []  # committed block hashes; chain[h - 1] is height h

    def make_block(
        self, height: int, round: int, proposer: bytes, note: bytes = b""
    ) -> tuple[bytes, bytes]:
        fields = {"height": height, "prev": self.head, "proposer": proposer, "round": round}
        block = encode({**fields, "note": note})
        return block, sha256(block)

    @property
    def head(self) -> bytes:
        """Hash of the last committed block: the parent of the next one."""
        return self.chain[-1] if self.chain else self.GENESIS

    def commit(self, height: int, block_hash: bytes) -> None:
        if height != len(self.chain) + 1:
            raise ValueError(f"commit of height {height} on a chain of {len(self.chain)}")
        self.chain.append(block_hash)

    # Application

    def validator_set(self, height: int) -> ValidatorSet:
        return self.validators

    def propose_block(self, height: int, round: int, time_ms: int) -> tuple[bytes, bytes]:
        return self.make_block(height, round, self.address)

    def block_hash(self, block: bytes) -> bytes | None:
        return sha256(block) if self._decode(block) is not None else None

    def validate_block(self, height: int, block: bytes) -> bool:
        fields = self._decode(block)
        return (
            fields is not None
            and fields["height"] == height
            and height == len(self.chain) + 1
            and fields["prev"] == self.head
            and fields["proposer"] in self.validators
            and not fields["note"].startswith(b"invalid")
        )

    @staticmethod
    def _decode(block: bytes) -> dict[str, Any] | None:
        try:
            fields = decode_canonical(block, 1024)
        except EncodingError:
            return None
        if not isinstance(fields, dict) or set(fields) != _BLOCK_FIELDS:
            return None
        if not all(isinstance(fields[k], bytes) for k in ("prev", "proposer", "note")):
            return None
        if not all(isinstance(fields[k], int) for k in ("height", "round")):
            return None
        return fields
