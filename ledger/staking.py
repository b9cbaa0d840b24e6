"""Stake: a validator bonds into the set with the consent of the current set, or unbonds out of it.

Normative text: specs/consensus.md, "Stake and slashing" (STAKE-4 to STAKE-8) and "Validator-set
changes". A change written by the block of height h takes effect in consensus at h + 1: the set of a
height is the validator records after the block before it (VSET-1), so nothing here touches consensus.
"""

from __future__ import annotations

from dataclasses import replace

from ledger.authorization import process_nonce, require_sole_signer
from ledger.constants import MAX_VALIDATORS, RATE_SCALE, UNBONDING_HEIGHTS, UNITS_PER_COIN
from ledger.errors import Code, Rejected
from ledger.monetary import settle_account
from ledger.records import (
    Account,
    SlashedValidator,
    Unbonding,
    UnbondingRelease,
    Validator,
    slashed_validator_key,
    unbonding_key,
    unbonding_release_key,
)
from ledger.state import State, scan_prefix
from ledger.tx import Tx


def compute_voting_power(stake: int) -> int:
    """Voting power of a stake: whole coins (STAKE-1)."""
    return stake // UNITS_PER_COIN


def read_validators(state: State) -> dict[bytes, Validator]:
    """The bonded validators by address, in address order: the set of the next height when read
    after the block before it."""
    prefix_length = len(Validator.PREFIX)
    return {key[prefix_length:]: record for key, record in scan_prefix(state, Validator.PREFIX).items()}


def is_slashed(state: State, address: bytes) -> bool:
    return state.get(slashed_validator_key(address)) is not None


def require_validator_quorum(tx: Tx, validators: dict[bytes, Validator], admitted: bytes) -> int:
    """Every signer other than `admitted` is a current validator, and together they hold strictly
    more than 2/3 of the current total voting power (3 * signed > 2 * total). Returns the power signed."""
    powers = {address: compute_voting_power(v.stake) for address, v in validators.items()}
    total = sum(powers.values())
    approvers = tx.signers - {admitted}
    outsiders = approvers - powers.keys()
    if outsiders:
        raise Rejected(Code.UNAUTHORIZED, f"{len(outsiders)} signer(s) are neither the new validator nor current validators")
    signed = sum(powers[address] for address in approvers)
    if 3 * signed <= 2 * total:
        raise Rejected(Code.VALIDATOR_QUORUM, f"validators holding {signed} of {total} voting power signed; more than 2/3 is needed")
    return signed


def process_validator_bond(state: State, tx: Tx) -> None:
    """STAKE-4: a new validator bonds `stake` from its own account, with the consent of the set."""
    validator, stake, name = tx.body["validator"], tx.body["stake"], tx.body["name"]
    if validator != tx.sender:
        raise Rejected(Code.UNAUTHORIZED, "a validator bonds from its own account: validator must equal from")
    if validator not in tx.signers:
        raise Rejected(Code.UNAUTHORIZED, "the new validator's key must sign its bond")
    if compute_voting_power(stake) == 0:
        raise Rejected(Code.STAKE_TOO_LOW, f"stake {stake} is below {UNITS_PER_COIN} (one coin, one vote)")
    validators = read_validators(state)
    if validator in validators:
        raise Rejected(Code.ALREADY_VALIDATOR, f"{validator.hex()[:16]}… is already bonded")
    if is_slashed(state, validator):
        raise Rejected(Code.VALIDATOR_SLASHED, f"{validator.hex()[:16]}… was slashed and may not bond again")
    pending = state.get(unbonding_key(validator))
    if pending is not None:
        raise Rejected(Code.VALIDATOR_UNBONDING, f"{validator.hex()[:16]}…'s earlier stake unbonds at height {pending.release_height}")
    powered = sum(1 for v in validators.values() if compute_voting_power(v.stake) > 0)
    if powered >= MAX_VALIDATORS:
        raise Rejected(Code.VALIDATOR_SET_FULL, f"{powered} validators with voting power; at most {MAX_VALIDATORS}")
    require_validator_quorum(tx, validators, validator)
    account = process_nonce(state, tx)  # settles the account first
    if account.balance < stake:
        raise Rejected(Code.INSUFFICIENT_FUNDS, f"balance {account.balance} < stake {stake}")
    state.set_account(validator, Account(account.balance - stake, account.nonce, account.settled_period))
    state.set_validator(validator, Validator(stake, name))
    t = state.get_totals()
    state.set_totals(replace(t, circulating=t.circulating - stake, bonded=t.bonded + stake))


def process_validator_unbond(state: State, tx: Tx) -> None:
    """STAKE-5: a validator leaves the set at once; its stake stays bonded, and slashable, for
    UNBONDING_HEIGHTS blocks, then returns to its account (process_unbonding_releases)."""
    require_sole_signer(tx, tx.sender)
    validators = read_validators(state)
    record = validators.get(tx.sender)
    if record is None:
        raise Rejected(Code.NOT_VALIDATOR, f"{tx.sender.hex()[:16]}… is not a bonded validator")
    remaining = sum(compute_voting_power(v.stake) for address, v in validators.items() if address != tx.sender)
    if remaining == 0 and compute_voting_power(record.stake) > 0:
        raise Rejected(Code.VALIDATOR_SET_MINIMUM, "the validators left would hold no voting power")
    process_nonce(state, tx)
    release_height = state.get_head().height + UNBONDING_HEIGHTS
    state.set_validator(tx.sender, None)
    state.put(unbonding_key(tx.sender), Unbonding(record.stake, release_height))
    queue = state.get(unbonding_release_key(release_height))
    addresses = [] if queue is None else list(queue.addresses)
    state.put(unbonding_release_key(release_height), UnbondingRelease(addresses + [tx.sender]))


def process_unbonding_releases(state: State, height: int) -> None:
    """At the start of the block of `height`: return the unbonding stake due at this height."""
    queue = state.get(unbonding_release_key(height))
    if queue is None:
        return
    state.delete(unbonding_release_key(height))
    for address in queue.addresses:
        unbonding = state.get(unbonding_key(address))
        if unbonding is None or unbonding.release_height != height:
            continue
        state.delete(unbonding_key(address))
        account = settle_account(state, address)
        state.set_account(address, Account(account.balance + unbonding.stake, account.nonce, account.settled_period))
        t = state.get_totals()
        state.set_totals(replace(t, circulating=t.circulating + unbonding.stake, bonded=t.bonded - unbonding.stake))


def process_slash(state: State, address: bytes) -> int:
    """STAKE-6/7: move slash_fraction of a misbehaving validator's stake, bonded or unbonding, to the
    commons pool. A bonded validator leaves the set and the rest of its stake returns to its account;
    unbonding stake keeps waiting for its release. A tombstone bars the key for good, and evidence
    against a key already slashed slashes nothing more. Returns the amount slashed."""
    if is_slashed(state, address):
        return 0
    validator = state.get_validator(address)
    unbonding = state.get(unbonding_key(address))
    if validator is None and unbonding is None:
        return 0
    fraction = state.get_params().slash_fraction
    slashed = returned = 0
    if validator is not None:
        cut = validator.stake * fraction // RATE_SCALE
        slashed += cut
        returned = validator.stake - cut
        state.set_validator(address, None)
        account = settle_account(state, address)
        state.set_account(address, Account(account.balance + returned, account.nonce, account.settled_period))
    if unbonding is not None:
        cut = unbonding.stake * fraction // RATE_SCALE
        slashed += cut
        state.put(unbonding_key(address), Unbonding(unbonding.stake - cut, unbonding.release_height))
    record_slashed(state, address)
    t = state.get_totals()
    state.set_totals(
        replace(
            t,
            bonded=t.bonded - slashed - returned,
            commons_pool=t.commons_pool + slashed,
            circulating=t.circulating + returned,
            slashed=t.slashed + slashed,
        )
    )
    return slashed


def record_slashed(state: State, address: bytes) -> None:
    """STAKE-7: the tombstone a slash leaves, at the slashing block's height."""
    state.put(slashed_validator_key(address), SlashedValidator(state.get_head().height))
