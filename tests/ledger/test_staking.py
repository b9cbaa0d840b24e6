"""Stake (specs/consensus.md, STAKE-4 to STAKE-8): validator_bond and validator_unbond conserve the
supply, every rejection leaves the state root unchanged, and the consent of the current set must be
strictly more than 2/3 of its voting power."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import BlockInput, LedgerDB
from ledger.errors import Code
from ledger.constants import UNBONDING_HEIGHTS
from ledger.records import SlashedValidator, Unbonding, Validator, slashed_validator_key, unbonding_key, unbonding_release_key
from ledger.staking import read_validators
from ledger.tx import encode_body, sign_tx
from tests.ledger.helpers import CHAIN_ID, addr, assert_rejected, key, make_genesis, new_ledger, nonce_of, signed_tx

COIN = 10**6
# Current validators and their voting power: total 9, so 6 is exactly 2/3 and 7 is just above.
POWERS = {11: 3, 12: 3, 13: 2, 14: 1}
NEW = 5  # the key that bonds
NEW_BALANCE = 50 * COIN


def ledger() -> LedgerDB:
    return new_ledger(make_genesis({NEW: NEW_BALANCE, 6: 10 * COIN, 11: 5 * COIN}, validators={i: p * COIN for i, p in POWERS.items()}))


def commit(db: LedgerDB, *txs: bytes, slashes: tuple[bytes, ...] = ()) -> None:
    """The next block, 1 ms on: still period 0, so no demurrage or UBI moves a balance."""
    head = db.head
    db.commit(db.execute(BlockInput(head.height + 1, head.time_ms + 1, tuple(txs), slashes)))


def bond_tx(db: LedgerDB, approvers: tuple[int, ...] = (11, 12, 13), *, sender: int = NEW, stake: int = 10 * COIN,
            name: str = "new", signers: tuple[int, ...] | None = None, **fields: Any) -> bytes:
    """A bond of key(sender), signed by it and by `approvers` (or exactly by `signers`)."""
    body_fields = {"validator": addr(sender), "stake": stake, "name": name, **fields}
    body = encode_body("validator_bond", CHAIN_ID, addr(sender), nonce_of(db, sender), **body_fields)
    keys = (sender, *approvers) if signers is None else signers
    return sign_tx(CHAIN_ID, body, [key(i) for i in keys])


def unbond_tx(db: LedgerDB, sender: int, cosigners: tuple[int, ...] = ()) -> bytes:
    return signed_tx("validator_unbond", sender, nonce_of(db, sender), cosigners=cosigners)


def advance_to(db: LedgerDB, height: int) -> None:
    """Empty blocks up to and including `height`."""
    while db.head.height < height:
        commit(db)


def balance(db: LedgerDB, i: int) -> int:
    account = db.view().get_account(addr(i))
    return 0 if account is None else account.balance


# what works --------------------------------------------------------------------------------------
def test_bond_moves_stake_from_circulating_to_bonded() -> None:
    db = ledger()
    before = db.totals()
    commit(db, bond_tx(db, stake=7 * COIN, name="fifth"))
    after = db.totals()
    assert db.get_record(b"v" + addr(NEW)) == Validator(7 * COIN, "fifth")
    assert balance(db, NEW) == NEW_BALANCE - 7 * COIN
    assert after.bonded == before.bonded + 7 * COIN
    assert after.circulating == before.circulating - 7 * COIN
    assert after.circulating + after.commons_pool + after.ubi_reserve + after.bonded == after.total_supply == before.total_supply
    assert nonce_of(db, NEW) == 1


def test_unbond_leaves_the_set_at_once_and_returns_the_stake_after_the_unbonding_heights() -> None:
    db = ledger()
    before = db.totals()
    commit(db, unbond_tx(db, 11))  # height 1
    release = 1 + UNBONDING_HEIGHTS
    assert db.get_record(b"v" + addr(11)) is None
    assert addr(11) not in read_validators(db.view())
    assert db.get_record(unbonding_key(addr(11))) == Unbonding(3 * COIN, release)
    assert balance(db, 11) == 5 * COIN and db.totals().bonded == before.bonded  # still bonded, slashable
    advance_to(db, release - 1)
    assert balance(db, 11) == 5 * COIN
    advance_to(db, release)
    after = db.totals()
    assert balance(db, 11) == 5 * COIN + 3 * COIN
    assert after.bonded == before.bonded - 3 * COIN
    assert after.circulating == before.circulating + 3 * COIN
    assert after.total_supply == before.total_supply
    assert db.get_record(unbonding_key(addr(11))) is None and db.get_record(unbonding_release_key(release)) is None


def test_bond_then_unbond_restores_the_balance_after_the_unbonding_heights() -> None:
    db = ledger()
    commit(db, bond_tx(db))
    commit(db, unbond_tx(db, NEW))
    advance_to(db, 2 + UNBONDING_HEIGHTS)
    assert balance(db, NEW) == NEW_BALANCE
    assert db.totals().bonded == sum(POWERS.values()) * COIN


def test_unbonding_stake_is_still_slashed() -> None:
    """An equivocator cannot escape its slash by unbonding before the evidence is included."""
    db = ledger()
    commit(db, unbond_tx(db, 11))
    before = db.totals()
    commit(db, slashes=(addr(11),))
    cut = 3 * COIN // 20  # slash_fraction 5%
    after = db.totals()
    assert after.slashed == before.slashed + cut and after.commons_pool == before.commons_pool + cut
    assert after.bonded == before.bonded - cut
    assert db.get_record(unbonding_key(addr(11))) == Unbonding(3 * COIN - cut, 1 + UNBONDING_HEIGHTS)
    commit(db, slashes=(addr(11),))  # the same evidence again slashes nothing more
    assert db.totals().slashed == after.slashed
    advance_to(db, 1 + UNBONDING_HEIGHTS)
    assert balance(db, 11) == 5 * COIN + 3 * COIN - cut
    assert db.totals().bonded == before.bonded - 3 * COIN


def test_just_above_two_thirds_is_accepted() -> None:
    db = ledger()
    commit(db, bond_tx(db, (11, 12, 14)))  # 3 + 3 + 1 = 7 of 9
    assert addr(NEW) in read_validators(db.view())


def test_a_bonded_validator_counts_towards_the_next_change() -> None:
    """The current set is the records as they stand when the transaction runs (STAKE-4)."""
    db = ledger()
    commit(db, bond_tx(db, stake=9 * COIN))  # total power 18 now
    assert_rejected(db, bond_tx(db, (11, 12, 13, 14), sender=6, stake=COIN), Code.VALIDATOR_QUORUM)  # 9 of 18
    commit(db, bond_tx(db, (11, 12, 13, 14, NEW), sender=6, stake=COIN))  # 18 of 18
    assert addr(6) in read_validators(db.view())


def test_a_voluntarily_unbonded_validator_may_bond_again_once_its_stake_is_released() -> None:
    db = ledger()
    commit(db, bond_tx(db))
    commit(db, unbond_tx(db, NEW))
    advance_to(db, 2 + UNBONDING_HEIGHTS)
    commit(db, bond_tx(db))
    assert addr(NEW) in read_validators(db.view())


def test_a_slash_leaves_a_tombstone() -> None:
    db = ledger()
    commit(db, slashes=(addr(14),))
    assert db.get_record(slashed_validator_key(addr(14))) == SlashedValidator(1)
    assert addr(14) not in read_validators(db.view())


# rejections: one each, the state root unchanged --------------------------------------------------------
def test_exactly_two_thirds_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, (11, 12)), Code.VALIDATOR_QUORUM)  # 6 of 9


def test_bond_of_an_already_bonded_validator_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, (12, 13, 14), sender=11, stake=COIN), Code.ALREADY_VALIDATOR)


def test_bond_below_one_coin_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, stake=COIN - 1), Code.STAKE_TOO_LOW)


def test_bond_name_over_64_bytes_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, name="é" * 33), Code.TX_BAD_FIELD)  # 33 characters, 66 bytes


def test_bond_beyond_the_balance_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, stake=NEW_BALANCE + 1), Code.INSUFFICIENT_FUNDS)


def test_bond_without_the_new_validators_signature_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, signers=(11, 12, 13)), Code.UNAUTHORIZED)


def test_bond_of_another_key_than_the_sender_is_rejected() -> None:
    db = ledger()
    body = encode_body("validator_bond", CHAIN_ID, addr(NEW), 0, validator=addr(6), stake=COIN, name="x")
    assert_rejected(db, sign_tx(CHAIN_ID, body, [key(i) for i in (NEW, 6, 11, 12, 13)]), Code.UNAUTHORIZED)


def test_bond_cosigned_by_a_non_validator_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, bond_tx(db, (11, 12, 13, 6)), Code.UNAUTHORIZED)


def test_a_slashed_validator_may_not_bond_again() -> None:
    db = ledger()
    commit(db, slashes=(addr(11),))
    assert_rejected(db, bond_tx(db, (12, 13, 14), sender=11, stake=COIN), Code.VALIDATOR_SLASHED)


def test_bond_while_the_earlier_stake_is_unbonding_is_rejected() -> None:
    db = ledger()
    commit(db, bond_tx(db))
    commit(db, unbond_tx(db, NEW))
    assert_rejected(db, bond_tx(db), Code.VALIDATOR_UNBONDING)


def test_unbond_of_a_non_validator_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, unbond_tx(db, NEW), Code.NOT_VALIDATOR)


def test_unbond_signed_by_more_than_the_validator_is_rejected() -> None:
    db = ledger()
    assert_rejected(db, unbond_tx(db, 11, cosigners=(12,)), Code.UNAUTHORIZED)


def test_unbond_of_the_last_validator_with_power_is_rejected() -> None:
    db = new_ledger(make_genesis({1: COIN}, validators={11: 2 * COIN, 12: COIN - 1}))
    assert_rejected(db, unbond_tx(db, 11), Code.VALIDATOR_SET_MINIMUM)
    commit(db, unbond_tx(db, 12))  # a validator without power may always leave
    assert list(read_validators(db.view())) == [addr(11)]


def test_bond_into_a_full_set_is_rejected() -> None:
    from ledger import staking

    db = ledger()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(staking, "MAX_VALIDATORS", len(POWERS))  # the set of four is full
        assert_rejected(db, bond_tx(db, (11, 12, 14)), Code.VALIDATOR_SET_FULL)


def test_a_validator_without_power_may_leave_a_set_whose_others_hold_none() -> None:
    db = new_ledger(make_genesis({NEW: NEW_BALANCE}, validators={11: 3 * COIN, 12: COIN // 2}))
    assert_rejected(db, unbond_tx(db, 11), Code.VALIDATOR_SET_MINIMUM)
    commit(db, unbond_tx(db, 12))  # no power: leaving changes no vote
    assert addr(12) not in read_validators(db.view())
