"""A light client's check of one account entry: validator set -> commit certificate -> header ->
state root -> Merkle proof -> entry. Every link is checked here; nothing the node says is taken on
its word (specs/audit.md, "Proofs").

The trust root is the validator set. With the genesis file (`trusted`), the set the node serves for
the height must be a subset of the genesis validators with the same powers (stake only ever leaves
the set, by slashing), and the certificate's signers must hold more than 1/3 of the genesis power,
so at least one validator the auditor trusts signed. Without it, the set the node serves is
checked only against the header's validators_hash, and the answer says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.audit.sources import BlockUnreadable, block_from_json
from consensus.errors import MessageInvalid
from consensus.rpc_methods import proof_from_json
from consensus.types import ValidatorSet
from ledger import Genesis
from ledger.constants import UNITS_PER_COIN
from ledger.merkle import verify_proof
from ledger.records import account_key
from ledger.state import decode_record

__all__ = ["ProofRejected", "ProvenAccount", "fetch_and_verify", "trusted_set_of", "verify_account_proof"]


class ProofRejected(Exception):
    """A link of the chain of trust does not hold; the message says which."""


@dataclass(frozen=True)
class ProvenAccount:
    address: str
    height: int
    block_hash: str
    state_root: str
    account: dict[str, int] | None
    """The stored entry (balance as last settled, nonce, settled_period); None: no such account."""
    signed_power: int
    set_power: int
    trust: str
    """"genesis": the set was checked against the genesis validators; "node": taken from the node."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def trusted_set_of(genesis: Genesis) -> ValidatorSet:
    return ValidatorSet.from_powers({a: s // UNITS_PER_COIN for a, _, s in genesis.validators if s // UNITS_PER_COIN > 0})


def _validator_set(answer: Any) -> ValidatorSet:
    try:
        entries = answer["validators"] if isinstance(answer, dict) else answer
        return ValidatorSet.from_powers({bytes.fromhex(v["address"]): int(v["power"]) for v in entries})
    except (KeyError, TypeError, ValueError, MessageInvalid) as exc:
        raise ProofRejected(f"the node's validator set is malformed: {exc}") from None


def verify_account_proof(
    address: bytes,
    proof_answer: dict[str, Any],
    block_answer: Any,
    validators_answer: Any,
    chain_id: str,
    trusted: ValidatorSet | None = None,
) -> ProvenAccount:
    """Check every link; raise ProofRejected naming the first that fails."""
    try:
        height = int(proof_answer["height"])
        claimed_root = bytes.fromhex(proof_answer["state_root"])
        value = None if proof_answer.get("value") is None else bytes.fromhex(proof_answer["value"])
        proof = proof_from_json(proof_answer["proof"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofRejected(f"the proof answer is malformed: {exc}") from None
    try:
        block = block_from_json(height, block_answer)
    except BlockUnreadable as exc:
        raise ProofRejected(f"the block of height {height}: {exc.reason}") from None
    header, certificate = block.header, block.certificate
    if header.chain_id != chain_id or header.height != height:
        raise ProofRejected(f"the header is for chain {header.chain_id!r} height {header.height}, not {chain_id!r} height {height}")
    # validator set -> certificate
    vset = _validator_set(validators_answer)
    if vset.hash != header.validators_hash:
        raise ProofRejected("the validator set the node served is not the one the header names (validators_hash)")
    if trusted is not None:
        for v in vset.validators:
            if trusted.power_of(v.address) != v.power:
                raise ProofRejected(f"validator {v.address.hex()[:16]}… with power {v.power} is not a genesis validator with that power")
    if certificate.height != height or certificate.block_hash != header.hash:
        raise ProofRejected("forged certificate: it is not for this header")
    try:
        certificate.verify(vset, chain_id)
    except MessageInvalid as exc:
        raise ProofRejected(f"forged certificate: {exc}") from None
    signed = sum(vset.power_of(s.validator) for s in certificate.signatures)
    if trusted is not None:
        trusted_signed = sum(trusted.power_of(s.validator) for s in certificate.signatures)
        if trusted_signed < trusted.round_skip_power:
            raise ProofRejected(f"forged certificate: genesis validators holding only {trusted_signed} of {trusted.total_power} power signed")
    # certificate -> header -> state root -> entry
    if claimed_root != header.state_root:
        raise ProofRejected("the proof is against another state root than the certified header's")
    key = account_key(address)
    if not verify_proof(header.state_root, key, value, proof):
        raise ProofRejected("wrong proof: the Merkle proof does not lead from the entry to the certified state root")
    account = None
    if value is not None:
        record = decode_record(key, value)
        account = {"balance": record.balance, "nonce": record.nonce, "settled_period": record.settled_period}
    return ProvenAccount(
        address=address.hex(),
        height=height,
        block_hash=header.hash.hex(),
        state_root=header.state_root.hex(),
        account=account,
        signed_power=signed,
        set_power=vset.total_power,
        trust="node" if trusted is None else "genesis",
    )


def fetch_and_verify(client: Any, address: bytes, height: int | None, genesis: Genesis | None) -> ProvenAccount:
    """Fetch the entry with its proof, the header and certificate of its height, and the validator
    set of that height from the node behind `client`, and verify them."""
    proof_answer = client.call("proof", address=address.hex(), height=height)
    h = int(proof_answer["height"])
    block_answer = client.call("block", height=h)
    validators_answer = client.call("validators", height=h)
    if genesis is not None:
        chain_id, trusted = genesis.chain_id, trusted_set_of(genesis)
    else:
        chain_id = str((block_answer or {}).get("header", {}).get("chain_id", ""))
        trusted = None
    return verify_account_proof(address, proof_answer, block_answer, validators_answer, chain_id, trusted)
