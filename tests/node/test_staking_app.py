"""Validator-set changes through the ledger application (specs/consensus.md, VSET-1 and VSET-3): a
validator bonded by block h is in the set of h + 1, not of h; an unbond likewise; certificates are
checked against the set of their own height."""

from __future__ import annotations

import pytest

from consensus.app_ledger import BlockRefused
from ledger.tx import encode_body, sign_tx
from ledger import make_tx
from tests.ledger.helpers import CHAIN_ID, key
from tests.node.test_app_ledger import VALIDATORS, Node, certificate

COIN = 10**6
NEW = 2  # holds 10**9 in the genesis of test_app_ledger; the four validators hold 10 coins each


def bond_tx(stake: int) -> bytes:
    body = encode_body("validator_bond", CHAIN_ID, key(NEW).address, 0, validator=key(NEW).address, stake=stake, name="new")
    return sign_tx(CHAIN_ID, body, [key(NEW), *(key(i) for i in VALIDATORS[:3])])  # 30 of 40


def test_bond_and_unbond_take_effect_at_the_next_height() -> None:
    a, b, c = Node(), Node(), Node()
    new = key(NEW).address
    # height 1 bonds NEW with 20 coins
    a.mempool.add(bond_tx(20 * COIN))
    data1, hash1 = a.app.propose_block(1, 0, a.clock.now_ms())
    cert1 = certificate(1, hash1)
    for node in (a, b):
        assert node.app.validate_block(1, data1)
        node.app.commit(hash1, data1, cert1)
    c.app.apply_synced(data1, cert1.to_bytes())
    for node in (a, b, c):
        assert new not in node.app.validator_set(1)
        assert node.app.validator_set(2).power_of(new) == 20
    # height 2 unbonds it; its header names the set of 2, which holds NEW
    a.mempool.add(make_tx(CHAIN_ID, "validator_unbond", key(NEW), 1))
    a.clock.advance_ms(100)
    data2, hash2 = a.app.propose_block(2, 0, a.clock.now_ms())
    header = a.app.decode(data2).header  # type: ignore[union-attr]
    assert header.validators_hash == c.app.validator_set(2).hash
    # the four genesis validators hold 40 of 60: exactly 2/3, not a commit at height 2
    with pytest.raises(BlockRefused):
        c.app.apply_synced(data2, certificate(2, hash2, VALIDATORS).to_bytes())
    assert c.ledger.head.height == 1
    c.app.apply_synced(data2, certificate(2, hash2, (*VALIDATORS[:3], NEW)).to_bytes())  # 50 of 60
    assert new not in c.app.validator_set(3)
    assert c.app.validator_set(2).power_of(new) == 20  # the set of a past height stays
    assert c.ledger.totals().bonded == 60 * COIN  # the unbonding stake stays bonded, and slashable, until released
