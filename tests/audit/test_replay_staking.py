"""cli.audit.replay over validator-set changes: the set of h+1 follows a bond or unbond in block h
(specs/consensus.md, VSET-1), with no change to the replay itself."""

from __future__ import annotations

from cli.audit.replay import replay
from ledger.tx import encode_body, sign_tx
from tests.audit.chain import COIN, VALIDATORS, ChainBuilder, ListSource, audit_genesis, tampered
from tests.ledger.helpers import CHAIN_ID, key, signed_tx

NEW = 5  # holds one coin in audit_genesis


def bonded_chain() -> ChainBuilder:
    b = ChainBuilder(audit_genesis())
    body = encode_body("validator_bond", CHAIN_ID, key(NEW).address, 0, validator=key(NEW).address, stake=COIN, name="new")
    b.add_block([sign_tx(CHAIN_ID, body, [key(i) for i in (NEW, *VALIDATORS)])])
    b.add_block()  # certified by the set of 2, which holds NEW
    b.add_block([signed_tx("validator_unbond", NEW, 1)])
    b.add_block()
    return b


def test_a_chain_with_a_bond_and_an_unbond_replays_clean() -> None:
    b = bonded_chain()
    hashes = [s.header.validators_hash for s in b.sources]
    assert hashes[0] == hashes[3] != hashes[1] == hashes[2]
    result = replay(b.source(), jobs=1)
    assert result.ok and result.divergence is None, result.divergence
    assert result.blocks == 4


def test_a_header_naming_the_set_before_the_bond_is_named() -> None:
    b = bonded_chain()
    stale = b.sources[0].header.validators_hash
    second = b.sources[1]
    header = second.header.__class__(**{**second.header.to_wire(), "validators_hash": stale})
    forged = tampered(tampered(second, header=header), certificate=b.certify(header.hash, 2, [key(i).address for i in VALIDATORS]))
    result = replay(ListSource(b.genesis, [b.sources[0], forged]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "validator set")
